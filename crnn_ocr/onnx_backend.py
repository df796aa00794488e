"""The onnxruntime backend: an exported ``.onnx`` model behind the ``Backend`` interface.

A deployment needs only ``onnxruntime``, ``numpy`` and ``opencv`` (plus ``soundfile`` and
``scipy`` for speech); this module never imports torch (a test checks ``sys.modules``)::

    from crnn_ocr.recognizer import load_recognizer
    rec = load_recognizer("model.onnx", beam_width=1)   # Recognizer(OnnxBackend, front-end, decoder)
    rec.read("word.png").text

The ``.onnx`` file alone suffices: ``crnn_ocr.deploy.export`` stores the alphabet, kind, front-end
(``crnn_ocr.frontend``) and the frame count T(W) as JSON under the metadata key ``crnn_ocr``
(``read_onnx_metadata``). Files of format 1 store ``preprocess`` instead of ``frontend``; they
read the same (``frontend.stored_frontend``).

A file without that metadata is read as a PaddleOCR recognizer (``crnn_ocr.ppocr``: its
character list from the metadata key ``character`` or ``alphabet``, PaddleOCR's preprocessing,
its softmax output turned into log-probabilities), or refused in one line naming the file and
what is missing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from crnn_ocr.alphabet import Alphabet
from crnn_ocr.decoding import log_softmax
from crnn_ocr.extras import require
from crnn_ocr.frontend import Frontend, stored_frontend
from crnn_ocr.ppocr import PRESETS, inspect_ppocr
from crnn_ocr.tasks import check_ctc_model

METADATA_KEY = "crnn_ocr"
ONNX_FORMAT = "crnn_ocr-onnx/2"  # 2: the front-end dict under "frontend" (1: "preprocess"; still read)
READABLE_FORMATS = ("crnn_ocr-onnx/1", ONNX_FORMAT)
INPUT_NAME = "images"  # (N, C, H, W) float32 in [-1, 1]
WIDTHS_NAME = "widths"  # (N,) int64: each image's true width in the right-padded batch (exports since the masking)
OUTPUT_NAME = "logits"  # (N, T, num_classes) float32


class OnnxModelError(ValueError):
    """An .onnx file is missing, unreadable, or neither a crnn_ocr export nor a CTC recognizer it can read."""


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
    check_ctc_model(meta.get("kind"), path)  # a classifier's export: crnn_ocr.classify reads it
    if meta.get("format") not in READABLE_FORMATS:
        raise OnnxModelError(f"{path}: unsupported crnn_ocr ONNX format {meta.get('format')!r} (expected {ONNX_FORMAT!r})")
    return meta


class OnnxBackend:
    """Runs an onnxruntime session of a CTC model (CPU by default): a crnn_ocr export, or a foreign
    recognizer (PP-OCR) whose tensor names and output kind are given.

    Args:
        session: an ``onnxruntime.InferenceSession``.
        frames: T(W) of the model (a crnn_ocr export's metadata, or measured: ``ppocr.fit_frames``).
        precision: "fp32" or "int8", as exported.
        input_name, output_name: the image input (N, C, H, W) and the class scores (N, T, K).
        scores: what the output holds: "logits" (raw scores: log_softmax) or "probs" (softmax, as
            PP-OCR exports: their log, renormalized).
    """

    name = "onnx"
    uses_torch = False

    def __init__(self, session: Any, frames: FrameRule, *, precision: str = "fp32", input_name: str = INPUT_NAME,
                 output_name: str = OUTPUT_NAME, scores: str = "logits") -> None:
        if scores not in ("logits", "probs"):
            raise ValueError(f"scores must be logits or probs, got {scores!r}")
        self.session = session
        self.frames = frames
        self.precision = precision
        self.input_name, self.output_name, self.scores = input_name, output_name, scores
        # exports made before the widths input (and foreign models) cannot mask the batch padding:
        # equal-width batches only
        self.maskable = WIDTHS_NAME in {i.name for i in session.get_inputs()}

    def output_length(self, width: int) -> int:
        return int(self.frames(width))

    def logits(self, batch: np.ndarray, widths: np.ndarray | None = None) -> np.ndarray:
        """Inputs (N, C, H, W) float32 and their true widths (N,) (default: all W) -> the model's
        output (N, T, K) float32: logits, or probabilities for ``scores="probs"``."""
        feeds = {self.input_name: batch}
        if self.maskable:
            full = np.full(batch.shape[0], batch.shape[3], dtype=np.int64)
            feeds[WIDTHS_NAME] = full if widths is None else np.asarray(widths, dtype=np.int64)
        return self.session.run([self.output_name], feeds)[0]

    def log_probs(self, batch: np.ndarray, widths: np.ndarray) -> np.ndarray:
        out = self.logits(batch, widths)  # (N, T, K)
        if self.scores == "probs":
            return probs_to_log_probs(out)
        return log_softmax(out)  # (N, T, K) logits -> log-probs (float64)


def probs_to_log_probs(probs: np.ndarray) -> np.ndarray:
    """Softmax outputs (..., K) -> float32 log-probabilities, each row renormalized (float32 rows sum
    to 1 only within ~1e-5) and zeros floored at the smallest float32 (log 0 would be -inf)."""
    p = np.maximum(np.asarray(probs, dtype=np.float32), np.finfo(np.float32).tiny)
    out: np.ndarray = np.log(p) - np.log(p.sum(axis=-1, keepdims=True))
    return out


def load_onnx(
    path: str | os.PathLike,
    *,
    threads: int | None = None,
    providers: list[str] | None = None,
    expected_kind: str | None = None,
    preset: str | None = None,
    alphabet: str | os.PathLike | Sequence[str] | None = None,
) -> tuple[OnnxBackend, Alphabet, Frontend, str]:
    """A model's backend, alphabet, front-end and kind. ``threads``: onnxruntime intra-op threads
    (None: its default, one per physical core); ``providers``: default ``["CPUExecutionProvider"]``.

    A crnn_ocr export carries everything; a file without crnn_ocr metadata, or any file with
    ``preset="ppocr"``, is read as a PP-OCR recognizer (``crnn_ocr.ppocr``), its characters from
    its metadata or ``alphabet`` (a PaddleOCR dict file or a list of symbols).
    """
    if preset is not None and preset not in PRESETS:
        raise OnnxModelError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    session = _session(path, threads, providers)
    path = os.fspath(path)
    props = session.get_modelmeta().custom_metadata_map
    if preset is None and METADATA_KEY in props:
        if alphabet is not None:
            raise OnnxModelError(f"{path}: a crnn_ocr export carries its own alphabet; --alphabet is for foreign models")
        return _load_export(session, _parse_metadata(props, path), path, expected_kind)
    try:
        found = inspect_ppocr(session, props, path, alphabet)
    except ValueError as e:
        raise OnnxModelError(str(e)) from None
    if expected_kind not in (None, "text"):
        raise OnnxModelError(f"{path}: is a text model, cannot read {expected_kind} input with it")
    frames = FrameRule(stride=found.stride, offset=found.offset, min_width=1)
    backend = OnnxBackend(session, frames, input_name=found.input_name, output_name=found.output_name, scores=found.scores)
    return backend, found.alphabet, found.frontend, "text"


def _session(path: str | os.PathLike, threads: int | None, providers: list[str] | None) -> Any:
    """An onnxruntime session of the file at ``path`` (one-line ``OnnxModelError`` if it cannot be had)."""
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
        return ort.InferenceSession(path, options, providers=providers or ["CPUExecutionProvider"])
    except Exception as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise OnnxModelError(f"{path}: not a loadable ONNX model ({msg})") from None


def _load_export(session: Any, meta: dict[str, Any], path: str, expected_kind: str | None) -> tuple[OnnxBackend, Alphabet, Frontend, str]:
    """A crnn_ocr export's backend, alphabet, front-end and kind, from its metadata."""
    kind = meta.get("kind", "text")
    if expected_kind is not None and kind != expected_kind:
        raise OnnxModelError(f"{path}: is a {kind} model, cannot read {expected_kind} input with it")
    try:
        frontend = stored_frontend(meta, source=path)
    except ValueError as e:
        raise OnnxModelError(str(e)) from None
    backend = OnnxBackend(session, FrameRule.from_dict(meta["frames"]), precision=meta.get("precision", "fp32"))
    return backend, Alphabet.from_dict(meta["alphabet"]), frontend, kind
