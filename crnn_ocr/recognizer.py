"""The Python API for reading: ``Recognizer.from_checkpoint(path).read(image)``.

A Recognizer holds a model in eval mode, its alphabet and preprocessing settings (all from
the checkpoint) and a ``CTCDecoder``. It is safe to share between threads: inference runs
under ``torch.inference_mode`` and touches no shared mutable state.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from crnn_ocr.alphabet import Alphabet
from crnn_ocr.checkpoint import CheckpointError, load_checkpoint
from crnn_ocr.decoding import CTCDecoder, DecodeResult
from crnn_ocr.model import CRNN, ModelConfig, build_model, output_lengths
from crnn_ocr.preprocessing import decode_image, image_to_tensor, pad_batch, resize_to_height

ImageInput = str | os.PathLike | bytes | np.ndarray


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes model input: gray/RGB, height, width cap."""

    height: int = 32
    channels: int = 1
    max_width: int | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocess:
        return cls(height=int(d["height"]), channels=int(d["channels"]), max_width=d.get("max_width"))


class Recognizer:
    """Reads images with a trained CRNN and a CTC decoder.

    Args:
        model: a CRNN (put in eval mode on ``device``).
        alphabet: the model's alphabet.
        preprocess: image preprocessing settings the model was trained with.
        device: where the model runs; default CUDA if present, else CPU.
        decoder_options: passed to ``CTCDecoder`` (``beam_width``, ``lexicon``, ``lm``, ...).
    """

    def __init__(
        self,
        model: CRNN,
        alphabet: Alphabet,
        preprocess: Preprocess,
        *,
        device: str | torch.device | None = None,
        kind: str = "text",
        **decoder_options: Any,
    ) -> None:
        self.device = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = model.to(self.device).eval()
        self.alphabet = alphabet
        self.preprocess = preprocess
        self.kind = kind
        self.decoder = CTCDecoder(alphabet, **decoder_options)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        *,
        device: str | torch.device | None = None,
        expected_kind: str | None = None,
        **decoder_options: Any,
    ) -> Recognizer:
        """Build from a crnn_ocr checkpoint (weights, config, alphabet and preprocessing inside)."""
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
        return cls(model, alphabet, pre, device=device, kind=kind, **decoder_options)

    # ------------------------------------------------------------------ preprocessing
    def prepare(self, image: ImageInput) -> np.ndarray:
        """Decode and resize one image to the model's height: uint8 (H, W) or (H, W, 3)."""
        img = decode_image(image, self.preprocess.channels)
        return resize_to_height(img, self.preprocess.height, max_width=self.preprocess.max_width)

    # ------------------------------------------------------------------ inference
    @torch.inference_mode()
    def log_probs(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Prepared images -> (log-probs (N, T, C) float32, lengths (N,)) for the decoder."""
        tensors = [image_to_tensor(img) for img in images]  # each (C, H, w)
        batch = pad_batch(tensors).to(self.device)  # (N, C, H, W)
        widths = torch.tensor([t.shape[-1] for t in tensors])
        logits = self.model(batch)  # (N, C, H, W) -> (N, T, K)
        lengths = output_lengths(widths, self.model.config).clamp(max=logits.shape[1])
        return torch.log_softmax(logits.float(), dim=-1).cpu().numpy(), lengths.numpy()

    def read(self, image: ImageInput) -> DecodeResult:
        """Read one image (a path, encoded bytes, or an array): text, confidence, spans."""
        return self.read_batch([image])[0]

    def read_batch(self, images: Iterable[ImageInput], batch_size: int = 32) -> list[DecodeResult]:
        """Read many images; batches are formed from images of similar width."""
        prepared = [self.prepare(img) for img in images]
        order = sorted(range(len(prepared)), key=lambda i: prepared[i].shape[1])
        results: list[DecodeResult | None] = [None] * len(prepared)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            log_probs, lengths = self.log_probs([prepared[i] for i in idx])
            for i, res in zip(idx, self.decoder.decode_batch(log_probs, lengths)):
                results[i] = res
        return results  # type: ignore[return-value]

    def frame_to_columns(self, span: tuple[int, int], prepared_width: int, original_width: int) -> tuple[int, int]:
        """Map a frame span (start, end) to pixel columns of the original image (approximate:
        frames are spread evenly over the resized width)."""
        t = int(output_lengths(torch.tensor([prepared_width]), self.model.config)[0])
        scale = original_width / prepared_width
        x0 = span[0] * prepared_width / t * scale
        x1 = span[1] * prepared_width / t * scale
        return int(round(x0)), int(round(min(x1, original_width)))
