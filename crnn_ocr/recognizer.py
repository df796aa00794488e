"""The Python API for reading: ``load_recognizer(path).read(image)`` -> ``DecodeResult``.

Two backends share one interface (``BaseRecognizer``: ``prepare``, ``log_probs``, ``read``,
``read_batch``, ``read_files``):

- ``Recognizer`` runs a crnn_ocr checkpoint (``.pt``) with PyTorch (``from_checkpoint``);
- ``OnnxRecognizer`` (``crnn_ocr.onnx_backend``) runs an exported ``.onnx`` file with
  onnxruntime and never imports torch (``from_onnx``).

``load_recognizer`` picks the backend from the file suffix. This module imports torch only when
a torch ``Recognizer`` is built, so the ONNX path stays torch-free.

A recognizer holds its model, alphabet, preprocessing settings and a ``CTCDecoder``; it is safe
to share between threads (no shared mutable state during inference).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from crnn_ocr.alphabet import Alphabet
from crnn_ocr.decoding import CTCDecoder, DecodeResult
from crnn_ocr.preprocessing import decode_image, images_to_batch, resize_to_height

if TYPE_CHECKING:
    import torch

    from crnn_ocr.model import CRNN
    from crnn_ocr.onnx_backend import OnnxRecognizer

ImageInput = str | os.PathLike | bytes | np.ndarray
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes model input: gray/RGB, height, width cap; for speech models also the
    log-mel front-end's settings (``audio``, an ``AudioFrontend.to_dict()``)."""

    height: int = 32
    channels: int = 1
    max_width: int | None = None
    audio: dict[str, Any] | None = None
    width_scale: float = 1.0  # images: horizontal stretch after the keep-ratio resize (preprocessing.resize_to_height)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocess:
        max_width = d.get("max_width")
        audio = d.get("audio")
        return cls(height=int(d["height"]), channels=int(d["channels"]), max_width=None if max_width is None else int(max_width),
                   audio=dict(audio) if audio else None, width_scale=float(d.get("width_scale", 1.0)))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"height": self.height, "channels": self.channels, "max_width": self.max_width}
        if self.width_scale != 1.0:  # written only when used: older readers see the same settings as before
            d["width_scale"] = self.width_scale
        return {**d, "audio": dict(self.audio)} if self.audio else d


class BaseRecognizer:
    """Preprocessing, batching and CTC decoding around a backend's forward pass.

    A backend implements ``output_length(width)`` (frames T for an input width) and
    ``_log_probs_of_batch(batch, widths)``: float32 (N, C, H, W) in [-1, 1] and each image's true
    width (N,) -> float32 log-probs (N, T, K). A backend whose model masks the batch padding
    (``masks_padding``) reads every image as it would read it alone, whatever else is in its
    batch; one that cannot (torchvision trunks, ONNX files exported before the ``widths`` input)
    is only given batches of images of equal width, so its readings do not depend on the batch either.
    """

    backend = ""
    masks_padding = True

    def __init__(self, alphabet: Alphabet, preprocess: Preprocess, *, kind: str = "text", **decoder_options: Any) -> None:
        self.alphabet = alphabet
        self.preprocess = preprocess
        self.kind = kind
        self.decoder = CTCDecoder(alphabet, **decoder_options)

    # ------------------------------------------------------------------ backend
    def output_length(self, width: int) -> int:
        raise NotImplementedError

    def _log_probs_of_batch(self, batch: np.ndarray, widths: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # ------------------------------------------------------------------ preprocessing
    def prepare(self, image: ImageInput) -> np.ndarray:
        """Decode and resize one image to the model's height: uint8 (H, W) or (H, W, 3), at full
        resolution however wide (``read_prepared`` reads one wider than the model's ``max_width``
        in overlapping windows)."""
        img = decode_image(image, self.preprocess.channels)
        return resize_to_height(img, self.preprocess.height, width_scale=self.preprocess.width_scale)

    # ------------------------------------------------------------------ long lines
    @property
    def frame_stride(self) -> int:
        """Input columns per output frame (4 for every arch: T = (W + offset) // 4)."""
        return round(1000 / (self.output_length(2000) - self.output_length(1000)))

    def windows(self, width: int) -> list[tuple[int, int, int, int]]:
        """How an input of ``width`` columns is read: ``(x0, x1, first, last)`` per window, where
        columns ``[x0, x1)`` go through the model and its frames ``[first, last)`` (global frame
        numbers) are kept.

        Up to the model's ``max_width`` (what it was trained on): one window, all frames. Wider:
        windows of ``max_width`` columns every ``max_width // 2`` (rounded to the frame stride,
        so a window's frame ``t`` is global frame ``t + x0 // stride``), the last one flush with
        the right edge; consecutive windows hand over in the middle of their overlap, so every
        kept frame has at least a quarter window of context on both sides.
        """
        size = self.preprocess.max_width
        total = self.output_length(width)
        if size is None or width <= size:
            return [(0, width, 0, total)]
        s = self.frame_stride
        step = max(s, size // 2 // s * s)
        starts = list(range(0, width - size, step))
        last_start = (width - size) // s * s
        if last_start > starts[-1]:
            starts.append(last_start)
        out = []
        for k, x0 in enumerate(starts):
            x1 = width if k == len(starts) - 1 else x0 + size
            # hand over at the middle of the overlap with the next window (in global frames)
            first = 0 if k == 0 else out[-1][3]
            last = total if k == len(starts) - 1 else (x0 + size + starts[k + 1]) // 2 // s
            out.append((x0, x1, first, last))
        return out

    # ------------------------------------------------------------------ inference
    def log_probs(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Prepared images -> (log-probs (N, T, K) float32, lengths (N,) int64) for the decoder.

        The images are right-padded to the widest (repeating the last column) and run as one
        batch; the model is told each image's width, so the padding changes none of its frames.
        """
        batch = images_to_batch(list(images))  # (N, C, H, W)
        widths = np.array([int(im.shape[1]) for im in images], dtype=np.int64)  # (N,)
        log_probs = self._log_probs_of_batch(batch, widths)  # (N, T, K)
        lengths = np.array([self.output_length(int(w)) for w in widths], dtype=np.int64)
        return log_probs, np.minimum(lengths, log_probs.shape[1])

    def read(self, image: ImageInput) -> DecodeResult:
        """Read one image (a path, encoded bytes, or an array): text, confidence, spans."""
        return self.read_batch([image])[0]

    def read_batch(self, images: Iterable[ImageInput], batch_size: int = 32) -> list[DecodeResult]:
        """Read many images; batches are formed from images of similar width."""
        return self.read_prepared([self.prepare(img) for img in images], batch_size)

    def read_prepared(self, prepared: Sequence[np.ndarray], batch_size: int = 32) -> list[DecodeResult]:
        """Read prepared images (``prepare``'s output), batching images of similar width (of
        equal width when the backend does not mask padding: ``masks_padding``). An image wider
        than the model's ``max_width`` is read in overlapping windows (``windows``) whose frames
        are stitched into one (T, K) sequence before decoding: one reading, spans in its frames."""
        stride = self.frame_stride
        pieces = []  # (image index, window array, first kept frame, last kept frame, window's global frame offset)
        whole = []  # per image: read in one piece
        for i, im in enumerate(prepared):
            windows = self.windows(int(im.shape[1]))
            whole.append(len(windows) == 1)
            pieces += [(i, im[:, x0:x1], first, last, x0 // stride) for x0, x1, first, last in windows]
        order = sorted(range(len(pieces)), key=lambda k: pieces[k][1].shape[1])
        results: list[DecodeResult | None] = [None] * len(prepared)
        parts: dict[int, list[tuple[int, np.ndarray]]] = {}  # image index -> (first kept frame, its frames)
        for idx in self._batches(order, [int(pieces[k][1].shape[1]) for k in order], batch_size):
            log_probs, lengths = self.log_probs([pieces[k][1] for k in idx])  # (n, T, K), (n,)
            single = [j for j, k in enumerate(idx) if whole[pieces[k][0]]]
            if single:
                decoded = self.decoder.decode_batch(log_probs[single], lengths[single])
                for j, res in zip(single, decoded):
                    results[pieces[idx[j]][0]] = res
            for j, k in enumerate(idx):
                i, _, first, last, offset = pieces[k]
                if not whole[i]:
                    parts.setdefault(i, []).append((first, log_probs[j, first - offset : last - offset]))
        if parts:
            stitched = sorted(parts)
            sequences = [np.concatenate([frames for _, frames in sorted(parts[i], key=lambda p: p[0])]) for i in stitched]
            for i, res in zip(stitched, self.decoder.decode_batch(sequences)):
                results[i] = res
        return results  # type: ignore[return-value]

    def _batches(self, order: list[int], widths: list[int], batch_size: int) -> Iterator[list[int]]:
        """Consecutive runs of ``order`` (sorted by width) of at most ``batch_size``; runs of one width
        only when the backend does not mask padding."""
        start = 0
        while start < len(order):
            end = min(start + batch_size, len(order))
            if not self.masks_padding:
                end = next((k for k in range(start + 1, end) if widths[k] != widths[start]), end)
            yield order[start:end]
            start = end

    def read_files(
        self, paths: Sequence[str | os.PathLike], *, batch_size: int = 32, workers: int = 4, window: int | None = None,
        on_error: Callable[[str | os.PathLike, str], None] | None = None,
    ) -> Iterator[tuple[str | os.PathLike, np.ndarray, DecodeResult]]:
        """Read files in order, yielding ``(path, prepared input, result)``.

        Files are decoded and resized by ``workers`` threads (OpenCV releases the GIL) while the
        model runs on the previous ``window`` files (default ``8 * batch_size``), which are
        batched by width. A file that cannot be read (``prepare`` raises ``ValueError`` naming
        it) raises, unless ``on_error(path, message)`` is given: then it is reported there and
        skipped, and every other file is still read and yielded, in order.
        """
        window = window or 8 * batch_size
        chunks = [paths[i : i + window] for i in range(0, len(paths), window)]
        if not chunks:
            return
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="crnn_ocr-decode") \
            if workers > 1 and len(paths) > 1 else None
        try:
            submit = lambda chunk: [pool.submit(self.prepare, p) for p in chunk] if pool else chunk  # noqa: E731
            pending = submit(chunks[0])
            for k, chunk in enumerate(chunks):
                current, pending = pending, (submit(chunks[k + 1]) if k + 1 < len(chunks) else [])
                kept, prepared = [], []
                for path, job in zip(chunk, current):
                    try:  # in order: without on_error the first bad file raises here
                        prepared.append(job.result() if isinstance(job, Future) else self.prepare(job))
                        kept.append(path)
                    except ValueError as e:
                        if on_error is None:
                            raise
                        on_error(path, str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
                yield from zip(kept, prepared, self.read_prepared(prepared, batch_size))
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    def frame_to_columns(self, span: tuple[int, int], prepared_width: int, original_width: int) -> tuple[int, int]:
        """Map a frame span (start, end) to pixel columns of the original image (approximate:
        frames are spread evenly over the resized width)."""
        t = self.output_length(prepared_width)
        scale = original_width / prepared_width
        x0 = span[0] * prepared_width / t * scale
        x1 = span[1] * prepared_width / t * scale
        return int(round(x0)), int(round(min(x1, original_width)))


class Recognizer(BaseRecognizer):
    """Reads images with a CRNN in PyTorch and a CTC decoder.

    Args:
        model: a CRNN (put in eval mode on ``device``).
        alphabet: the model's alphabet.
        preprocess: image preprocessing settings the model was trained with.
        device: where the model runs; default CUDA if present, else CPU.
        precision: "fp32" (default) or "bf16" (autocast; about 2x faster on CPUs with AVX512-BF16
            or AMX, but with 8 mantissa bits its logits are not fp32's and can flip the decoded
            text of ambiguous images, so it is opt-in; bench/bench_deploy.py measures the cost).
        channels_last: NHWC memory layout for the convolutions; None (default) turns it on:
            the same fp32 arithmetic, faster convolutions on CPU (bench/bench_inference.py).
        decoder_options: passed to ``CTCDecoder`` (``beam_width``, ``lexicon``, ``lm``, ...).
    """

    backend = "torch"

    def __init__(
        self,
        model: CRNN,
        alphabet: Alphabet,
        preprocess: Preprocess,
        *,
        device: str | torch.device | None = None,
        kind: str = "text",
        precision: str = "fp32",
        channels_last: bool | None = None,
        **decoder_options: Any,
    ) -> None:
        import torch

        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        super().__init__(alphabet, preprocess, kind=kind, **decoder_options)
        self.device = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.precision = precision
        self.channels_last = True if channels_last is None else channels_last
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        self.model = model.to(self.device).eval().to(memory_format=memory_format)
        self.masks_padding = bool(getattr(model, "maskable", False))  # torchvision trunks: equal-width batches

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        *,
        device: str | torch.device | None = None,
        expected_kind: str | None = None,
        precision: str = "fp32",
        channels_last: bool | None = None,
        **decoder_options: Any,
    ) -> Recognizer:
        """Build from a crnn_ocr checkpoint (weights, config, alphabet and preprocessing inside).

        A speech checkpoint gives a ``crnn_ocr.speech.SpeechRecognizer`` (audio in, same API).
        """
        model, alphabet, pre, kind = load_model(path, expected_kind=expected_kind)
        if kind == "speech" and pre.audio is not None:
            from crnn_ocr.speech import SpeechRecognizer

            if not issubclass(cls, SpeechRecognizer):
                cls = SpeechRecognizer
        return cls(model, alphabet, pre, device=device, kind=kind, precision=precision, channels_last=channels_last,
                   **decoder_options)

    def output_length(self, width: int) -> int:
        from crnn_ocr.model import output_length

        return int(output_length(width, self.model.config))

    def _log_probs_of_batch(self, batch: np.ndarray, widths: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            x = torch.from_numpy(batch).to(self.device)  # (N, C, H, W)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            logits = self.model(x, torch.from_numpy(widths))  # (N, C, H, W), (N,) -> (N, T, K)
            return torch.log_softmax(logits.float(), dim=-1).cpu().numpy()


def load_model(path: str | os.PathLike, *, expected_kind: str | None = None) -> tuple[CRNN, Alphabet, Preprocess, str]:
    """A checkpoint's CRNN (weights loaded, on CPU), alphabet, preprocessing and kind."""
    from crnn_ocr.checkpoint import CheckpointError, load_checkpoint
    from crnn_ocr.model import ModelConfig, build_model

    state = load_checkpoint(path)
    kind = state.get("kind", "text")
    if expected_kind is not None and kind != expected_kind:
        raise CheckpointError(f"{path}: is a {kind} model, cannot read {expected_kind} input with it")
    config = ModelConfig.from_dict(state["model_config"])
    model = build_model(config)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not match the stored model config ({str(e).splitlines()[0]})") from None
    alphabet = Alphabet.from_dict(state["alphabet"])
    pre = Preprocess.from_dict(state.get("preprocess", {"height": config.height, "channels": config.in_channels}))
    return model.eval(), alphabet, pre, kind


def load_recognizer(
    path: str | os.PathLike,
    *,
    backend: str = "auto",
    device: str | None = None,
    threads: int | None = None,
    precision: str = "fp32",
    channels_last: bool | None = None,
    expected_kind: str | None = None,
    **decoder_options: Any,
) -> Recognizer | OnnxRecognizer:
    """A recognizer for a checkpoint (``.pt``, PyTorch) or an export (``.onnx``, onnxruntime).

    ``backend``: "auto" (by suffix), "torch" or "onnx". ``threads`` sets onnxruntime's intra-op
    threads (PyTorch's are process-wide: ``torch.set_num_threads``). ``precision`` and
    ``channels_last`` apply to PyTorch; an int8 ONNX export is chosen at export time.
    """
    if backend == "auto":
        backend = "onnx" if os.fspath(path).lower().endswith(".onnx") else "torch"
    if backend == "onnx":
        from crnn_ocr.onnx_backend import OnnxRecognizer

        if device not in (None, "cpu"):
            raise ValueError(f"the onnx backend runs on the CPU here, got device {device!r}")
        if precision != "fp32" or channels_last is not None:
            raise ValueError("precision and channels_last apply to the torch backend; export with --int8 for a quantized model")
        return OnnxRecognizer.from_onnx(path, threads=threads, expected_kind=expected_kind, **decoder_options)
    if backend != "torch":
        raise ValueError(f"backend must be auto, torch or onnx, got {backend!r}")
    return Recognizer.from_checkpoint(path, device=device, expected_kind=expected_kind, precision=precision,
                                      channels_last=channels_last, **decoder_options)
