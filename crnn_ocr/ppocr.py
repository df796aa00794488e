"""PP-OCR recognition models: PaddleOCR's CTC recognizers, exported to ONNX, read through crnn_ocr.

    from crnn_ocr.recognizer import load_recognizer
    rec = load_recognizer("PP-OCRv6_rec_small.onnx", beam_width=10, lexicon="words.txt")
    rec.read("word.jpg").text

A PP-OCR recognition file takes images ``(N, 3, 48, W)`` and gives per-frame softmax
probabilities ``(N, T, C)``; its character list is the ONNX metadata key ``character`` (one symbol
a line) or, for files without it, a PaddleOCR dict file given as ``alphabet``. This module says
what crnn_ocr needs to read such a file (``inspect_ppocr``):

- the classes as one ``Alphabet`` (``ppocr_alphabet``): class 0 is the CTC blank (PaddleOCR's
  and crnn_ocr's), class ``i`` the ``i``-th character, and a last class, when the model has one
  more than blank + characters, is the space (PaddleOCR's ``use_space_char``);
- that the file is a CTC recognizer at all (one image input of rank 4 with 3 channels, an
  output of rank 3; ``signature_problem``), else one line naming the file and what is missing;
- the frames per input width ``T = (W + offset) // stride`` (measured: ``fit_frames``) and
  whether the output holds probabilities or raw scores;
- the front-end: PaddleOCR's preprocessing (``crnn_ocr.frontend.PaddleRecFrontend``).

``onnx_backend.load_onnx`` reads a file this way when it has no crnn_ocr metadata, or when asked
(``preset="ppocr"``); every decoding feature then works on it (beam, lexicons, LM, hotwords,
spans, long lines). The model files are PaddleOCR's (Apache-2.0): crnn_ocr never ships them.
This module imports neither torch nor onnxruntime (it is given the session).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from crnn_ocr.alphabet import Alphabet
from crnn_ocr.frontend import PaddleRecFrontend

PRESETS = ("ppocr",)
"""Foreign model families ``load_recognizer(preset=...)`` reads."""
CHARACTER_KEY = "character"
"""ONNX metadata key of a PP-OCR export's character list (one symbol a line, without blank and space)."""
SPACE = " "


@dataclass(frozen=True)
class PaddleModel:
    """What reading a PP-OCR recognition file takes: its alphabet, front-end, tensor names, frames
    ``T = (W + offset) // stride``, and what its output holds ("probs": softmax, or "logits")."""

    alphabet: Alphabet
    frontend: PaddleRecFrontend
    input_name: str
    output_name: str
    stride: int
    offset: int
    scores: str


def read_character_file(path: str | os.PathLike) -> list[str]:
    """A PaddleOCR dict file: one symbol a line, in class order (line ``i`` is class ``i + 1``),
    kept as PaddleOCR keeps it (only the line break is removed, so a line holding a space is the space)."""
    try:
        with open(path, "rb") as f:
            data = f.read().decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{os.fspath(path)}: cannot read the character file: {e}") from None
    return [line.rstrip("\r") for line in data.split("\n")][: -1 if data.endswith("\n") else None]


def ppocr_alphabet(characters: Sequence[str], num_classes: int, source: str | os.PathLike = "<model>") -> Alphabet:
    """PaddleOCR's classes as an ``Alphabet``: blank (class 0), ``characters``, and a space as the
    last class when ``num_classes`` is ``len(characters) + 2``. ``ValueError`` naming ``source``
    when the counts do not fit or a symbol is empty or listed twice."""
    chars = list(characters)
    n = len(chars)
    if num_classes == n + 2:
        chars.append(SPACE)
    elif num_classes != n + 1:
        raise ValueError(f"{os.fspath(source)}: the model has {num_classes} classes but its character list {n} "
                         f"symbols (expected {n + 1} classes: blank + symbols, or {n + 2}: and a space)")
    seen: dict[str, int] = {}
    for i, c in enumerate(chars):
        if not c:
            raise ValueError(f"{os.fspath(source)}: symbol {i + 1} of its character list is empty")
        if c in seen:
            raise ValueError(f"{os.fspath(source)}: symbol {c!r} is listed twice in its character list "
                             f"(classes {seen[c]} and {i + 1}); crnn_ocr needs one class per symbol")
        seen[c] = i + 1
    return Alphabet(chars, separator="")


def signature_problem(inputs: Sequence[tuple[str, Sequence[Any] | None]], outputs: Sequence[tuple[str, Sequence[Any] | None]]) -> str | None:
    """What keeps a model with these ``(name, shape)`` inputs and outputs from being a CTC text
    recognizer (one image batch (N, 3, H, W) in, class scores (N, T, C) out), or None."""
    if len(inputs) != 1:
        return f"it has {len(inputs)} inputs, expected one image batch (N, 3, H, W)"
    name, shape = inputs[0]
    if shape is not None and len(shape) != 4:
        return f"its input {name!r} has rank {len(shape)}, expected images (N, 3, H, W)"
    if shape is not None and isinstance(shape[1], int) and shape[1] != 3:
        return f"its input {name!r} takes {shape[1]} channels, expected 3 (N, 3, H, W)"
    if not outputs:
        return "it has no output"
    name, shape = outputs[0]
    if shape is not None and len(shape) != 3:
        return f"its output {name!r} has rank {len(shape)}, expected per-frame class scores (N, T, classes)"
    return None


def fit_frames(frames_at: Callable[[int], int], base: int = 320) -> tuple[int, int]:
    """(stride, offset) with ``frames_at(W) == (W + offset) // stride``, measured around ``base``
    columns (a few calls of ``frames_at``) and checked at two other widths; ``ValueError`` when no
    such rule fits."""
    t0, t1 = frames_at(base), frames_at(2 * base)
    if t1 <= t0 or base % (t1 - t0):
        raise ValueError(f"its frames do not grow evenly with the width ({t0} at {base} columns, {t1} at {2 * base})")
    stride = base // (t1 - t0)
    lo, hi = base - stride + 1, base  # the narrowest width giving t0 frames lies in [lo, hi]
    while lo < hi:
        mid = (lo + hi) // 2
        if frames_at(mid) >= t0:
            hi = mid
        else:
            lo = mid + 1
    offset = t0 * stride - lo
    if not 0 <= offset < stride or any(frames_at(w) != (w + offset) // stride for w in (base // 3 + 1, base + base // 3 + 1)):
        raise ValueError(f"its frames are not (W + offset) // {stride} of the input width W")
    return stride, offset


def characters_of(props: Mapping[str, str], source: str | os.PathLike, alphabet: str | os.PathLike | Sequence[str] | None) -> list[str]:
    """The character list: ``alphabet`` (a dict file or a list) when given, else the metadata's."""
    if alphabet is not None:
        return read_character_file(alphabet) if isinstance(alphabet, (str, os.PathLike)) else list(alphabet)
    if CHARACTER_KEY not in props:
        raise ValueError(f"{os.fspath(source)}: no character list: neither a {CHARACTER_KEY!r} metadata key (a PP-OCR "
                         "export) nor 'crnn_ocr' metadata (tools/export.py); give its characters, one a line, as "
                         "alphabet (--alphabet FILE)")
    return props[CHARACTER_KEY].splitlines()


def inspect_ppocr(session: Any, props: Mapping[str, str], source: str | os.PathLike,
                  alphabet: str | os.PathLike | Sequence[str] | None = None) -> PaddleModel:
    """What reading the model of an onnxruntime ``session`` takes (see the module docstring);
    runs it a few times on blank inputs to measure its frames. One-line ``ValueError`` naming
    ``source`` for a file that is not a CTC recognizer or lacks its character list."""
    inputs = [(i.name, i.shape) for i in session.get_inputs()]
    outputs = [(o.name, o.shape) for o in session.get_outputs()]
    problem = signature_problem(inputs, outputs)
    if problem:
        raise ValueError(f"{os.fspath(source)}: not a CTC recognizer: {problem}")
    characters = characters_of(props, source, alphabet)
    shape = inputs[0][1]
    height = shape[2] if shape is not None and isinstance(shape[2], int) else 48
    frontend = PaddleRecFrontend(height=height)
    input_name, output_name = inputs[0][0], outputs[0][0]

    def run(width: int) -> np.ndarray:
        out = session.run([output_name], {input_name: np.zeros((1, 3, height, width), dtype=np.float32)})[0]
        if np.ndim(out) != 3:
            raise ValueError(f"{os.fspath(source)}: not a CTC recognizer: its output {output_name!r} has rank "
                             f"{np.ndim(out)}, expected per-frame class scores (N, T, classes)")
        return np.asarray(out)

    first = run(frontend.pad_width)  # (1, T, C)
    try:
        stride, offset = fit_frames(lambda w: run(w).shape[1], frontend.pad_width)
    except ValueError as e:
        raise ValueError(f"{os.fspath(source)}: not a CTC recognizer: {e}") from None
    probs = bool(first.min() >= 0 and np.abs(first.sum(axis=-1) - 1).max() < 1e-3)
    return PaddleModel(ppocr_alphabet(characters, first.shape[2], source), frontend, input_name, output_name,
                       stride, offset, "probs" if probs else "logits")
