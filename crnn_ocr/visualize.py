"""Draw a reading on its image: one box per symbol over the glyph it was read from.

CTC does not say where a glyph is, only the frames where the model emits each symbol, and a
BiLSTM emits a symbol once it is sure of it: often at the left edge of its glyph, and the
first symbol of a line as soon as the line starts (frame 0, over the margin). So a box is not
the emission frames themselves: symbol ``i`` owns the columns from its first emission frame to
the next symbol's (the first symbol from column 0, the last to the right edge), and the box is
that range trimmed to the columns holding ink (pixels of the text's polarity, Otsu threshold).
A range without ink keeps its emission frames.

``visualize_targets`` and ``draw_readings`` are ``tools/infer.py --visualize``: where each
input's picture goes, and drawing a recognizer's readings there.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import cv2
import numpy as np

from crnn_ocr.cli import UsageError
from crnn_ocr.decoding import DecodeResult

VISUALIZE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")  # what cv2.imwrite writes


def ink_profile(image: np.ndarray) -> np.ndarray:
    """int (W,): pixels per column of a text image (H, W[, 3]) uint8 that are ink.

    Otsu splits the pixels in two; the class most of the border belongs to is the background.
    """
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    _, dark = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)  # 1 where darker than the threshold
    border = np.concatenate([dark[0], dark[-1], dark[:, 0], dark[:, -1]])
    ink = dark if border.mean() < 0.5 else 1 - dark  # dark text on light, or light on dark
    return ink.sum(axis=0).astype(np.int64)


def ink_columns(image: np.ndarray) -> np.ndarray:
    """bool (W,): the columns of a text image that hold ink: at least ``max(2, H // 16)`` ink
    pixels (``ink_profile``)."""
    return ink_profile(image) >= max(2, image.shape[0] // 16)


def symbol_boxes(image: np.ndarray, spans: tuple[tuple[int, int], ...], num_frames: int) -> list[tuple[int, int]]:
    """Column range ``[x0, x1)`` of each symbol on the model's input image (see the module doc)."""
    w = image.shape[1]
    per_frame = w / max(num_frames, 1)
    ink = ink_columns(image)
    boxes = []
    for i, (start, end) in enumerate(spans):
        lo = 0 if i == 0 else int(round(start * per_frame))
        hi = w if i == len(spans) - 1 else int(round(spans[i + 1][0] * per_frame))
        cols = np.flatnonzero(ink[lo:hi])
        if cols.size:
            boxes.append((lo + int(cols[0]), lo + int(cols[-1]) + 1))
        else:
            x0 = int(start * per_frame)
            boxes.append((x0, max(int(round(end * per_frame)), x0 + 1)))
    return boxes


def draw_spans(image: np.ndarray, result: DecodeResult, num_frames: int, symbols: list[str]) -> np.ndarray:
    """Return an RGB copy of ``image`` (H, W[, 3], the model's input) with a box over each
    symbol's glyph (``symbol_boxes``) and the symbol above it, plus the text and confidence in
    a strip below."""
    boxes = symbol_boxes(image, result.spans, num_frames)
    rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image.copy()
    h, w = rgb.shape[:2]
    scale = max(1.0, 64.0 / h)  # enlarge small crops so the labels stay legible
    rgb = cv2.resize(rgb, (int(round(w * scale)), int(round(h * scale))), interpolation=cv2.INTER_CUBIC)
    h, w = rgb.shape[:2]
    strip = np.full((40 + 24, w if w > 200 else 200, 3), 255, np.uint8)
    canvas = np.full((h + 24 + strip.shape[0], max(w, strip.shape[1]), 3), 255, np.uint8)
    canvas[24 : 24 + h, :w] = rgb
    colors = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240)]
    for i, ((x0, x1), sym) in enumerate(zip(boxes, symbols)):
        x0, x1 = int(x0 * scale), max(int(x1 * scale) - 1, int(x0 * scale) + 1)
        color = colors[i % len(colors)]
        cv2.rectangle(canvas, (x0, 24), (x1, 24 + h - 1), color, 1)
        cv2.putText(canvas, sym, (x0, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1, cv2.LINE_AA)
    cv2.putText(canvas, f"{result.text}  ({result.confidence:.3f})", (4, h + 24 + 28), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas


def visualize_targets(target: str, paths: list[str]) -> dict[str, str]:
    """Where --visualize draws each input, decided before any work (one-line UsageError if it cannot).

    An image file name: that file for one input; for several, the name with the input's index
    (``spans_0001.png``, in input order). Anything else is a folder (made if missing), with one
    PNG per input named after it (``word.png``; the index is added when two inputs share a name).
    """
    stem, ext = os.path.splitext(target)
    if ext.lower() in VISUALIZE_EXTENSIONS:
        if os.path.isdir(target):
            raise UsageError(f"--visualize {target}: is a folder, but its name ends like an image file")
        if os.path.dirname(target) and not os.path.isdir(os.path.dirname(target)):
            raise UsageError(f"--visualize {target}: folder {os.path.dirname(target)} does not exist")
        if len(paths) == 1:
            return {paths[0]: target}
        digits = max(4, len(str(len(paths))))
        return {p: f"{stem}_{i:0{digits}d}{ext}" for i, p in enumerate(paths, 1)}
    if ext and not os.path.isdir(target):
        raise UsageError(f"--visualize {target}: not an image file name ({', '.join(VISUALIZE_EXTENSIONS)}) nor a folder")
    if os.path.exists(target) and not os.path.isdir(target):
        raise UsageError(f"--visualize {target}: is a file, expected a folder or an image file name")
    os.makedirs(target, exist_ok=True)
    names = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    out = {}
    for i, (p, name) in enumerate(zip(paths, names), 1):
        unique = names.count(name) == 1
        out[p] = os.path.join(target, f"{name}.png" if unique else f"{name}_{i:04d}.png")
    return out


def draw_readings(recognizer, readings: Iterable[tuple[str, np.ndarray, DecodeResult]], targets: dict[str, str]) -> None:
    """Draw each ``(path, prepared image, result)`` of an image recognizer into ``targets[path]``."""
    for path, img, res in readings:
        symbols = [recognizer.alphabet.symbol_of(i) for i in res.token_ids]
        canvas = draw_spans(img, res, recognizer.output_length(img.shape[1]), symbols)
        if not cv2.imwrite(targets[path], cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR)):
            raise UsageError(f"--visualize: could not write {targets[path]}")
