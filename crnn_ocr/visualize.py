"""Draw a reading on its image: one box per symbol over the image columns its frames cover."""

from __future__ import annotations

import cv2
import numpy as np

from crnn_ocr.decoding import DecodeResult


def draw_spans(image: np.ndarray, result: DecodeResult, num_frames: int, symbols: list[str]) -> np.ndarray:
    """Return an RGB copy of ``image`` (H, W[, 3]) with each symbol's frame span as a box and
    its symbol above it, plus the text and confidence in a strip below.

    Frame ``t`` of ``num_frames`` is drawn over columns ``[t * W / T, (t + 1) * W / T)``.
    """
    rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image.copy()
    h, w = rgb.shape[:2]
    scale = max(1.0, 64.0 / h)  # enlarge small crops so the labels stay legible
    rgb = cv2.resize(rgb, (int(round(w * scale)), int(round(h * scale))), interpolation=cv2.INTER_CUBIC)
    h, w = rgb.shape[:2]
    strip = np.full((40 + 24, w if w > 200 else 200, 3), 255, np.uint8)
    canvas = np.full((h + 24 + strip.shape[0], max(w, strip.shape[1]), 3), 255, np.uint8)
    canvas[24 : 24 + h, :w] = rgb
    colors = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240)]
    per_frame = w / max(num_frames, 1)
    for i, ((start, end), sym) in enumerate(zip(result.spans, symbols)):
        x0, x1 = int(start * per_frame), max(int(end * per_frame) - 1, int(start * per_frame) + 1)
        color = colors[i % len(colors)]
        cv2.rectangle(canvas, (x0, 24), (x1, 24 + h - 1), color, 1)
        cv2.putText(canvas, sym, (x0, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1, cv2.LINE_AA)
    cv2.putText(canvas, f"{result.text}  ({result.confidence:.3f})", (4, h + 24 + 28), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas
