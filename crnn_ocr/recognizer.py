"""The Python API for reading: ``load_recognizer(path or name).read(source)`` -> ``DecodeResult``.

One ``Recognizer(backend, frontend, decoder)`` reads every kind of model:

- the front-end (``crnn_ocr.frontend``) turns a source (an image, or audio for a speech model)
  into the model's input and pads inputs into a batch;
- the backend runs the model: ``log_probs(batch, widths) -> (N, T, C)``, ``output_length(width)``,
  ``maskable`` (``TorchBackend`` in ``crnn_ocr.torch_backend``, ``OnnxBackend`` in
  ``crnn_ocr.onnx_backend``: onnxruntime, no torch);
- the decoder (``crnn_ocr.decoding.CTCDecoder``, numpy only) turns log-probs into text.

``load_recognizer`` is the one place that decides the backend: a shipped model's name
(``crnn_ocr.pretrained``), an ``.onnx`` export, a PaddleOCR recognizer's ``.onnx`` file
(``crnn_ocr.ppocr``) or a ``.pt`` checkpoint; ``load_pretrained`` is its shorthand for the
shipped models. This module imports torch only when a torch backend is
built, so the ONNX path stays torch-free. Domain extras take a recognizer's output (speech word
times: ``crnn_ocr.speech.transcribe``). A recognizer holds no mutable state while reading: it is
safe to share between threads.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np

from crnn_ocr.alphabet import Alphabet
from crnn_ocr.decoding import CTCDecoder, DecodeResult
from crnn_ocr.frontend import Frontend
from crnn_ocr.preprocessing import decode_image
from crnn_ocr.pretrained import MODELS, default_lexicon, pretrained_path
from crnn_ocr.pretrained import shipped as shipped_model
from crnn_ocr.views import DEFAULT_VIEWS, Recheck, View, check_frontend, check_views, combine

Source = str | os.PathLike | bytes | np.ndarray  # a path, encoded bytes, or an image / waveform array
BACKENDS = ("auto", "torch", "onnx")


class Backend(Protocol):
    """Runs a model: float32 inputs (N, C, H, W) right-padded to the widest and each input's true
    width (N,) -> log-probabilities (N, T, C).

    A ``maskable`` backend's model masks the batch padding, so an input reads as it reads alone
    whatever else is in its batch; one that cannot (torchvision trunks, ONNX files exported before
    the ``widths`` input, PaddleOCR recognizers) is only given batches of equal width. ``uses_torch``: whether torch is
    loaded anyway (a front-end may then compute with it; False keeps a deployment torch-free).
    """

    name: str  # "torch", "onnx"
    maskable: bool
    uses_torch: bool

    def output_length(self, width: int) -> int:
        """Frames T the model emits for an input ``width`` columns wide."""
        ...

    def log_probs(self, batch: np.ndarray, widths: np.ndarray) -> np.ndarray:
        ...


WHOLE_INPUT_KINDS = frozenset({"score"})
"""Kinds read in one pass at any width (``Recognizer.windows``). A score staff read in windows of
its ``max_width`` lost the clef and key to later windows: on the held-out staves wider than it,
36 token errors against 19 in one pass (BENCHMARKS.md)."""


class Recognizer:
    """Reads sources with a backend, a front-end and a CTC decoder.

    Args:
        backend: runs the model (``TorchBackend``, ``OnnxBackend``).
        frontend: how a source becomes the model's input; the settings the model was trained with.
        decoder: a ``CTCDecoder`` over the model's alphabet (greedy, beam, lexicon, LM).
        kind: what the model reads, from its checkpoint: "text", "score" or "speech".
        recheck: a second look at unsure readings (``crnn_ocr.views.Recheck``): True (default)
            the one the model was exported with (``ImageFrontend.recheck``; most have none),
            False or None: one reading, a ``Recheck``: that one (image models only).
    """

    def __init__(self, backend: Backend, frontend: Frontend, decoder: CTCDecoder, *, kind: str = "text",
                 recheck: Recheck | bool | None = True) -> None:
        self.backend = backend
        self.frontend = frontend
        self.decoder = decoder
        self.kind = kind
        if isinstance(recheck, Recheck):
            check_frontend(frontend)
        elif recheck is True:
            recheck = getattr(frontend, "recheck", None)
        elif recheck not in (False, None):
            raise ValueError(f"recheck must be True, False, None or a crnn_ocr.views.Recheck, got {recheck!r}")
        self.recheck: Recheck | None = recheck or None

    @property
    def alphabet(self) -> Alphabet:
        return self.decoder.alphabet

    def __repr__(self) -> str:
        return f"Recognizer({self.kind}, backend={self.backend.name}, {self.frontend!r})"

    def output_length(self, width: int) -> int:
        """Frames T for an input ``width`` columns wide."""
        return self.backend.output_length(width)

    def prepare(self, source: Source, sample_rate: int | None = None) -> np.ndarray:
        """One source -> the model's input at full length (``Frontend.prepare``): an image resized
        to the model's height, uint8 (H, W) or (H, W, 3), or a speech model's float32 (n_mels,
        frames) spectrogram (a waveform array needs its ``sample_rate``). ``read_prepared`` reads
        one wider than the model's ``max_width`` in overlapping windows."""
        return self.frontend.prepare(source, sample_rate=sample_rate, use_torch=self.backend.uses_torch)

    def adapt(self, sources: Iterable[Source], sample_rate: int | None = None) -> int:
        """Re-estimate the model's BatchNorm statistics on unlabelled sources from the domain about
        to be read (a new speaker, microphone, scanner: ``crnn_ocr.adapt``, AdaBN); later readings
        use them. Returns the number of layers adapted. PyTorch backend only (``ValueError``
        otherwise); an input wider than ``max_width`` counts as the windows reading cuts it into."""
        return self.adapt_prepared([self.prepare(s, sample_rate) for s in sources])

    def adapt_prepared(self, prepared: Sequence[np.ndarray]) -> int:
        """``adapt`` on prepared inputs (``prepare``'s output)."""
        from crnn_ocr.adapt import adapt_torch_backend  # imports torch: not for the ONNX deployment

        pieces = [im[:, x0:x1] for im in prepared for x0, x1, _, _ in self.windows(int(im.shape[1]))]
        return adapt_torch_backend(self.backend, self.frontend, pieces, "adapt")

    # ------------------------------------------------------------------ long lines
    @property
    def frame_stride(self) -> int:
        """Input columns per output frame (4 for every arch: T = (W + offset) // 4)."""
        return round(1000 / (self.output_length(2000) - self.output_length(1000)))

    def windows(self, width: int) -> list[tuple[int, int, int, int]]:
        """How an input of ``width`` columns is read: ``(x0, x1, first, last)`` per window, where
        columns ``[x0, x1)`` go through the model and its frames ``[first, last)`` (global frame
        numbers) are kept.

        Up to the model's ``max_width`` (what it was trained on), or a score model's staff of any
        width (``WHOLE_INPUT_KINDS``: the clef and key signature at the start of a staff decide the
        pitch of every note after them, so no part of it is read without them): one window, all
        frames. Wider:
        windows of ``max_width`` columns every ``max_width // 2`` (rounded to the frame stride,
        so a window's frame ``t`` is global frame ``t + x0 // stride``), the last one flush with
        the right edge; consecutive windows hand over in the middle of their overlap, so every
        kept frame has at least a quarter window of context on both sides.
        """
        size = self.frontend.max_width
        total = self.output_length(width)
        if size is None or width <= size or self.kind in WHOLE_INPUT_KINDS:
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
    def log_probs(self, inputs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Prepared inputs -> (log-probs (N, T, K), lengths (N,) int64) for the decoder.

        The inputs are right-padded to the widest (``Frontend.to_batch``) and run as one batch; a
        ``maskable`` model is told each input's width, so the padding changes none of its frames,
        and an input's frames are those of its width. A model that cannot mask reads each row
        whole, so every frame of the row is the input's: ``read_prepared`` gives it inputs of one
        width, and the only padding is the front-end's own (PaddleOCR pads to 320 columns and
        decodes every frame).
        """
        batch = self.frontend.to_batch(inputs)  # (N, C, H, W)
        widths = np.array([int(im.shape[1]) for im in inputs], dtype=np.int64)  # (N,)
        log_probs = self.backend.log_probs(batch, widths)  # (N, T, K)
        if not self.backend.maskable:
            return log_probs, np.full(len(inputs), log_probs.shape[1], dtype=np.int64)
        lengths = np.array([self.output_length(int(w)) for w in widths], dtype=np.int64)
        return log_probs, np.minimum(lengths, log_probs.shape[1])

    def read(self, source: Source, sample_rate: int | None = None) -> DecodeResult:
        """Read one source (a path, encoded bytes, or an array; a waveform with its
        ``sample_rate``): text, confidence, spans."""
        return self.read_prepared([self.prepare(source, sample_rate)])[0]

    def read_batch(self, sources: Iterable[Source], batch_size: int = 32, sample_rate: int | None = None) -> list[DecodeResult]:
        """Read many sources (waveform arrays all at ``sample_rate``); batches group similar widths."""
        return self.read_prepared([self.prepare(s, sample_rate) for s in sources], batch_size)

    def read_prepared(self, prepared: Sequence[np.ndarray], batch_size: int = 32) -> list[DecodeResult]:
        """Read prepared inputs (``prepare``'s output), batching inputs of similar width (of
        equal width when the backend does not mask padding: ``Backend.maskable``). An input wider
        than the model's ``max_width`` is read in overlapping windows (``windows``) whose frames
        are stitched into one (T, K) sequence before decoding: one reading, spans in its frames.
        A model with a ``recheck`` (``crnn_ocr.views.Recheck``) reads an unsure input again under its
        views, if the input is read in one window (a word, not a line: a line's confidence is a
        product over many symbols, low however well it reads)."""
        results: list[DecodeResult | None] = [None] * len(prepared)
        unsure: dict[int, np.ndarray] = {}  # input index -> its frames, for the recheck
        for idx, frames in self._frames(prepared, batch_size):  # decoded batch by batch: only unsure frames kept
            for i, f, res in zip(idx, frames, self.decoder.decode_batch(frames)):
                results[i] = res
                # a word (one window); a line's confidence is a product over many symbols: read once, its
                # confidence (a forward pass) not computed here
                if self.recheck is not None and len(self.windows(int(prepared[i].shape[1]))) == 1 and res.confidence < self.recheck.below:
                    unsure[i] = f
        if unsure:
            self._recheck(prepared, results, unsure, batch_size)  # type: ignore[arg-type]
        return results  # type: ignore[return-value]

    def _recheck(self, prepared: Sequence[np.ndarray], results: list[DecodeResult], unsure: dict[int, np.ndarray],
                 batch_size: int) -> None:
        """Read the ``unsure`` inputs again under the recheck's views and put in ``results`` what the
        readings agree on (``crnn_ocr.views.combine``; spans stay in the first reading's frames)."""
        assert self.recheck is not None
        owner, inputs = [], []
        for i in unsure:
            for x in self.recheck.apply(prepared[i]):
                owner.append(i)
                inputs.append(x)
        frames = self.frames_prepared(inputs, batch_size)
        extra: dict[int, tuple[list[DecodeResult], list[np.ndarray]]] = {i: ([results[i]], [unsure[i]]) for i in unsure}
        for i, f, res in zip(owner, frames, self.decoder.decode_batch(frames)):
            extra[i][0].append(res)
            extra[i][1].append(f)
        for i, (readings, views) in extra.items():
            if len(readings) > 1:
                results[i] = combine(readings, views)

    def frames_prepared(self, prepared: Sequence[np.ndarray], batch_size: int = 32) -> list[np.ndarray]:
        """Prepared inputs -> each one's (T_i, K) log-probs, as ``read_prepared`` decodes them
        (batched by width; a wide input's windows stitched)."""
        out: list[np.ndarray | None] = [None] * len(prepared)
        for idx, frames in self._frames(prepared, batch_size):
            for i, f in zip(idx, frames):
                out[i] = f
        return out  # type: ignore[return-value]

    def _frames(self, prepared: Sequence[np.ndarray], batch_size: int) -> Iterator[tuple[list[int], list[np.ndarray]]]:
        """(input indices, their (T_i, K) log-probs) as they are complete: the inputs read in one
        piece batch by batch, then those read in windows, stitched."""
        stride = self.frame_stride
        pieces = []  # (image index, window array, first kept frame, last kept frame, window's global frame offset)
        whole = []  # per image: read in one piece
        for i, im in enumerate(prepared):
            windows = self.windows(int(im.shape[1]))
            whole.append(len(windows) == 1)
            pieces += [(i, im[:, x0:x1], first, last, x0 // stride) for x0, x1, first, last in windows]
        order = sorted(range(len(pieces)), key=lambda k: pieces[k][1].shape[1])
        parts: dict[int, list[tuple[int, np.ndarray]]] = {}  # image index -> (first kept frame, its frames)
        for idx in self._batches(order, [int(pieces[k][1].shape[1]) for k in order], batch_size):
            log_probs, lengths = self.log_probs([pieces[k][1] for k in idx])  # (n, T, K), (n,)
            done: tuple[list[int], list[np.ndarray]] = ([], [])
            for j, k in enumerate(idx):
                i, _, first, last, offset = pieces[k]
                if whole[i]:
                    done[0].append(i)
                    done[1].append(log_probs[j, : lengths[j]])
                else:
                    parts.setdefault(i, []).append((first, log_probs[j, first - offset : last - offset]))
            if done[0]:
                yield done
        if parts:
            stitched = sorted(parts)
            yield stitched, [np.concatenate([f for _, f in sorted(parts[i], key=lambda p: p[0])]) for i in stitched]

    def prepare_views(self, source: Source, views: Sequence[View] = DEFAULT_VIEWS) -> list[np.ndarray]:
        """One image source -> the model's input for each view that applies to it
        (``crnn_ocr.views``; the first is ``prepare``'s own when the first view is ``View()``)."""
        frontend = check_frontend(self.frontend)
        image = decode_image(source, frontend.channels)
        prepared = [v.apply(image, frontend.height, frontend.width_scale) for v in check_views(views)]
        kept = [p for p in prepared if p is not None]
        if not kept:
            raise ValueError(f"none of the {len(prepared)} views applies to an image of {image.shape[1]}x{image.shape[0]} pixels")
        return kept

    def read_views(self, sources: Iterable[Source], views: Sequence[View] = DEFAULT_VIEWS, batch_size: int = 32) -> list[DecodeResult]:
        """Read each image source under several test-time views and keep the reading they agree on
        (``crnn_ocr.views``: one forward pass per view; spans in the first view's frames)."""
        return self.read_view_sets([self.prepare_views(s, views) for s in sources], batch_size)

    def read_view_sets(self, view_sets: Sequence[Sequence[np.ndarray]], batch_size: int = 32) -> list[DecodeResult]:
        """``read_views`` on prepared views (``prepare_views``' output, one list per image)."""
        flat = [im for views in view_sets for im in views]
        frames = self.frames_prepared(flat, batch_size)
        readings = self.decoder.decode_batch(frames)
        out, k = [], 0
        for views in view_sets:
            n = len(views)
            out.append(combine(readings[k : k + n], frames[k : k + n]))
            k += n
        return out

    def _batches(self, order: list[int], widths: list[int], batch_size: int) -> Iterator[list[int]]:
        """Consecutive runs of ``order`` (sorted by width) of at most ``batch_size``; runs of one width
        only when the backend does not mask padding."""
        start = 0
        while start < len(order):
            end = min(start + batch_size, len(order))
            if not self.backend.maskable:
                end = next((k for k in range(start + 1, end) if widths[k] != widths[start]), end)
            yield order[start:end]
            start = end

    def read_files(
        self, paths: Sequence[str | os.PathLike], *, batch_size: int = 32, workers: int = 4, window: int | None = None,
        on_error: Callable[[str | os.PathLike, str], None] | None = None, views: Sequence[View] | None = None,
    ) -> Iterator[tuple[str | os.PathLike, np.ndarray, DecodeResult]]:
        """Read files in order, yielding ``(path, prepared input, result)``.

        Files are prepared by ``workers`` threads (OpenCV and libsndfile release the GIL) while the
        model runs on the previous ``window`` files (default ``8 * batch_size``), which are
        batched by width. A file that cannot be read (``prepare`` raises ``ValueError`` naming
        it) raises, unless ``on_error(path, message)`` is given: then it is reported there and
        skipped, and every other file is still read and yielded, in order. ``views``: read each
        image under these test-time views (``read_views``); the prepared input yielded is the first view's.
        """
        window = window or 8 * batch_size
        if views is None:
            prepare, read = self.prepare, self.read_prepared
        else:
            views = check_views(views)
            check_frontend(self.frontend)  # one error up front, not one per file
            prepare = lambda p: self.prepare_views(p, views)  # noqa: E731
            read = self.read_view_sets
        chunks = [paths[i : i + window] for i in range(0, len(paths), window)]
        if not chunks:
            return
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="crnn_ocr-decode") \
            if workers > 1 and len(paths) > 1 else None
        try:
            submit = lambda chunk: [pool.submit(prepare, p) for p in chunk] if pool else chunk  # noqa: E731
            pending = submit(chunks[0])
            for k, chunk in enumerate(chunks):
                current, pending = pending, (submit(chunks[k + 1]) if k + 1 < len(chunks) else [])
                kept, prepared = [], []
                for path, job in zip(chunk, current):
                    try:  # in order: without on_error the first bad file raises here
                        prepared.append(job.result() if isinstance(job, Future) else prepare(job))
                        kept.append(path)
                    except ValueError as e:
                        if on_error is None:
                            raise
                        on_error(path, str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
                results = read(prepared, batch_size)
                yield from zip(kept, prepared if views is None else [v[0] for v in prepared], results)
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
        return int(round(min(x0, original_width))), int(round(min(x1, original_width)))  # frames of a front-end's padding: at the edge




# ------------------------------------------------------------------------------------ loading
def resolve_model(source: str | os.PathLike, backend: str = "auto", *, torch_options: bool = False,
                  foreign: bool = False) -> tuple[str, str]:
    """(model file, backend) for ``load_recognizer``'s ``source``: the one backend decision.

    ``source``: a file, or the name of a shipped model (``crnn_ocr.pretrained.MODELS``; a file of
    that name wins). ``backend`` "auto": onnx for a ``.onnx`` file, else torch; for a shipped
    model its ONNX export when one ships, onnxruntime is installed and no torch-only option
    (``torch_options``: a device, precision or layout) is asked for. "onnx" with a shipped name
    needs its export. A ``foreign`` model (a preset or an alphabet given: PP-OCR) is an ONNX file.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be auto, torch or onnx, got {backend!r}")
    path = os.fspath(source)
    if foreign:
        if backend == "torch" or torch_options:
            raise ValueError(f"{path}: a foreign model (--preset, --alphabet) runs on the onnx backend; "
                             "device, precision and channels_last apply to torch")
        return path, "onnx"
    if (shipped := shipped_model(path)) is not None:
        path = os.fspath(pretrained_path(path))
        onnx = shipped.onnx_path
        has_onnx = onnx is not None and onnx.is_file()
        if backend == "onnx" and not has_onnx:
            raise ValueError(f"the shipped {shipped.name!r} model has no ONNX export; use backend torch")
        if backend == "onnx" or (backend == "auto" and has_onnx and not torch_options
                                 and importlib.util.find_spec("onnxruntime") is not None):
            return os.fspath(onnx), "onnx"
        return path, "torch"
    if backend == "auto":
        backend = "onnx" if path.lower().endswith(".onnx") else "torch"
    return path, backend


def load_recognizer(
    source: str | os.PathLike,
    *,
    backend: str = "auto",
    device: str | None = None,
    threads: int | None = None,
    precision: str = "fp32",
    channels_last: bool | None = None,
    expected_kind: str | None = None,
    preset: str | None = None,
    alphabet: str | os.PathLike | Sequence[str] | None = None,
    recheck: Recheck | bool | None = True,
    **decoder_options: Any,
) -> Recognizer:
    """A recognizer for a checkpoint (``.pt``, PyTorch), an export (``.onnx``, onnxruntime), a
    PaddleOCR recognizer (``.onnx``: ``crnn_ocr.ppocr``) or a shipped model's name ("english",
    "spoken_digits", "score"): see ``resolve_model``.

    ``threads`` sets onnxruntime's intra-op threads (PyTorch's are process-wide:
    ``torch.set_num_threads``). ``device``, ``precision`` and ``channels_last`` apply to PyTorch;
    an int8 ONNX model is chosen at export time. ``expected_kind``: refuse a model of another kind.
    ``preset`` ("ppocr") reads an ONNX file as that family even if it is not recognized as one;
    ``alphabet``: a foreign model's characters (a PaddleOCR dict file, one a line, or a list)
    when its file lacks them. ``decoder_options`` go to ``CTCDecoder`` (``beam_width``,
    ``lexicon``, ``lm``, ...), as the front-end adjusts them (``Frontend.decoder_options``:
    speech decodes word sequences). A shipped closed-vocabulary model loaded by name
    (``spoken_digits``) reads with its words as lexicon unless ``lexicon`` is given (``None``:
    none, greedy letters): ``crnn_ocr.pretrained.default_lexicon``. ``recheck``: ``Recognizer``'s
    (True: the model's own second look at unsure readings, if it was exported with one; False: none).
    """
    if "lexicon" not in decoder_options and (vocabulary := default_lexicon(source)):
        decoder_options["lexicon"] = vocabulary
    torch_options = device not in (None, "cpu") or precision != "fp32" or channels_last is not None
    path, backend = resolve_model(source, backend, torch_options=torch_options,
                                  foreign=preset is not None or alphabet is not None)
    if backend == "onnx":
        from crnn_ocr.onnx_backend import load_onnx

        if device not in (None, "cpu"):
            raise ValueError(f"the onnx backend runs on the CPU here, got device {device!r}")
        if precision != "fp32" or channels_last is not None:
            raise ValueError("precision and channels_last apply to the torch backend; export with --int8 for a quantized model")
        model, symbols, frontend, kind = load_onnx(path, threads=threads, expected_kind=expected_kind, preset=preset,
                                                   alphabet=alphabet)
    else:
        from crnn_ocr.torch_backend import TorchBackend, load_model

        net, symbols, frontend, kind = load_model(path, expected_kind=expected_kind)
        model = TorchBackend(net, device=device, precision=precision, channels_last=channels_last)
    decoder = CTCDecoder(symbols, **frontend.decoder_options(symbols, **decoder_options))
    return Recognizer(model, frontend, decoder, kind=kind, recheck=recheck)


def load_pretrained(name: str = "english", **options: Any) -> Recognizer:
    """A recognizer for shipped model ``name`` (``crnn_ocr.pretrained.MODELS``), run by PyTorch
    unless ``backend`` says otherwise; ``options`` as for ``load_recognizer``."""
    pretrained_path(name)  # a one-line ValueError for an unknown or missing model
    options.setdefault("backend", "torch")
    return load_recognizer(name, expected_kind=MODELS[name].kind, **options)
