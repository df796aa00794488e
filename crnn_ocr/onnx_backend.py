"""Reading with an exported ONNX model: onnxruntime + numpy preprocessing + the numpy CTC decoder.

A deployment needs only ``onnxruntime``, ``numpy`` and ``opencv``; this module never imports
torch (a test checks ``sys.modules``)::

    from crnn_ocr.onnx_backend import OnnxRecognizer
    rec = OnnxRecognizer.from_onnx("model.onnx", beam_width=1)
    rec.read("word.png").text

The ``.onnx`` file alone suffices: ``tools/export.py`` stores the alphabet, kind, preprocessing
and the frame count T(W) as JSON under the metadata key ``crnn_ocr`` (``read_onnx_metadata``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from crnn_ocr.alphabet import Alphabet
from crnn_ocr.decoding import log_softmax
from crnn_ocr.extras import require
from crnn_ocr.recognizer import BaseRecognizer, Preprocess

METADATA_KEY = "crnn_ocr"
ONNX_FORMAT = "crnn_ocr-onnx/1"
INPUT_NAME = "images"  # (N, C, H, W) float32 in [-1, 1]
WIDTHS_NAME = "widths"  # (N,) int64: each image's true width in the right-padded batch (exports since the masking)
OUTPUT_NAME = "logits"  # (N, T, num_classes) float32


class OnnxModelError(ValueError):
    """An .onnx file is missing, unreadable or was not exported by crnn_ocr."""


@dataclass(frozen=True)
class FrameRule:
    """Frames the model emits for an input of width W: ``T = (W + offset) // stride``.

    Every crnn_ocr arch fits this rule (crnn: W//4 + 1 = (W + 4)//4; resnet: (W//2 + 1)//2 =
    (W + 2)//4; mobilenetv3: (W + 3)//4); ``export_onnx`` checks it against the model.
    """

    stride: int
    offset: int
    min_width: int

    def __call__(self, width: int | np.ndarray) -> int | np.ndarray:
        return (width + self.offset) // self.stride

    def to_dict(self) -> dict[str, int]:
        return {"stride": self.stride, "offset": self.offset, "min_width": self.min_width}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FrameRule:
        return cls(stride=int(d["stride"]), offset=int(d["offset"]), min_width=int(d["min_width"]))


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The crnn_ocr metadata dict of an exported ``.onnx`` file (needs the ``onnx`` package)."""
    onnx = require("onnx", "reading ONNX metadata")
    try:
        model = onnx.load(os.fspath(path), load_external_data=False)
    except Exception as e:
        raise OnnxModelError(f"{path}: not a readable ONNX model ({str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__})") from None
    return _parse_metadata({p.key: p.value for p in model.metadata_props}, path)


def _parse_metadata(props: dict[str, str], path: str | os.PathLike) -> dict[str, Any]:
    if METADATA_KEY not in props:
        raise OnnxModelError(f"{path}: no {METADATA_KEY!r} metadata: export it with tools/export.py")
    meta = json.loads(props[METADATA_KEY])
    if meta.get("format") != ONNX_FORMAT:
        raise OnnxModelError(f"{path}: unsupported crnn_ocr ONNX format {meta.get('format')!r} (expected {ONNX_FORMAT!r})")
    return meta


class OnnxRecognizer(BaseRecognizer):
    """``BaseRecognizer`` running an onnxruntime session (CPU by default).

    Args:
        session: an ``onnxruntime.InferenceSession`` of a crnn_ocr export.
        alphabet, preprocess, kind: from the export's metadata.
        frames: T(W) of the exported arch.
        decoder_options: passed to ``CTCDecoder`` (``beam_width``, ``lexicon``, ``lm``, ...).
    """

    backend = "onnx"

    def __init__(self, session: Any, alphabet: Alphabet, preprocess: Preprocess, frames: FrameRule,
                 *, kind: str = "text", precision: str = "fp32", **decoder_options: Any) -> None:
        super().__init__(alphabet, preprocess, kind=kind, **decoder_options)
        self.session = session
        self.frames = frames
        self.precision = precision
        # exports made before the widths input cannot mask the batch padding: equal-width batches only
        self.masks_padding = WIDTHS_NAME in {i.name for i in session.get_inputs()}

    @classmethod
    def from_onnx(
        cls,
        path: str | os.PathLike,
        *,
        threads: int | None = None,
        providers: list[str] | None = None,
        expected_kind: str | None = None,
        **decoder_options: Any,
    ) -> OnnxRecognizer:
        """Load an exported model. ``threads``: onnxruntime intra-op threads (None: its default,
        one per physical core); ``providers``: default ``["CPUExecutionProvider"]``."""
        ort = require("onnxruntime", "the onnx backend (an .onnx model)")
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise OnnxModelError(f"{path}: {'is a directory, expected an ONNX model' if os.path.isdir(path) else 'ONNX model not found'}")
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: no warnings about unused initializers
        try:
            session = ort.InferenceSession(path, options, providers=providers or ["CPUExecutionProvider"])
        except Exception as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise OnnxModelError(f"{path}: not a loadable ONNX model ({msg})") from None
        meta = _parse_metadata(session.get_modelmeta().custom_metadata_map, path)
        kind = meta.get("kind", "text")
        if expected_kind is not None and kind != expected_kind:
            raise OnnxModelError(f"{path}: is a {kind} model, cannot read {expected_kind} input with it")
        if kind == "speech" and cls is OnnxRecognizer:
            from crnn_ocr.speech import OnnxSpeechRecognizer

            cls = OnnxSpeechRecognizer
        return cls(
            session, Alphabet.from_dict(meta["alphabet"]), Preprocess.from_dict(meta["preprocess"]),
            FrameRule.from_dict(meta["frames"]), kind=kind, precision=meta.get("precision", "fp32"), **decoder_options,
        )

    def output_length(self, width: int) -> int:
        return int(self.frames(width))

    def forward(self, batch: np.ndarray, widths: np.ndarray | None = None) -> np.ndarray:
        """Images (N, C, H, W) float32 in [-1, 1] and their true widths (N,) (default: all W)
        -> logits (N, T, K) float32."""
        feeds = {INPUT_NAME: batch}
        if self.masks_padding:
            full = np.full(batch.shape[0], batch.shape[3], dtype=np.int64)
            feeds[WIDTHS_NAME] = full if widths is None else np.asarray(widths, dtype=np.int64)
        return self.session.run([OUTPUT_NAME], feeds)[0]

    def _log_probs_of_batch(self, batch: np.ndarray, widths: np.ndarray) -> np.ndarray:
        return log_softmax(self.forward(batch, widths))  # (N, T, K) logits -> log-probs
