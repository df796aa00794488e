"""Text lines wider than the model's maximum width are read at full resolution in overlapping
windows and stitched into one reading; symbol boxes sit on their glyphs."""

from __future__ import annotations

from pathlib import Path

import editdistance
import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from crnn_ocr.pretrained import MODELS
from crnn_ocr.recognizer import load_recognizer
from crnn_ocr.visualize import symbol_boxes

FONT = str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")  # the same on every machine
LINES = [
    "the museum opens at nine and closes at five on sundays 2024",
    "please keep your ticket until the end of the journey thank you",
    "warehouse clearance sale everything must go 50 percent off today",
]


def squash(text: str) -> str:
    """Compared without spaces and case: a model with a space symbol and one without read the same line."""
    return text.replace(" ", "").lower()


def render_line(text: str, size: int = 28, margin: int = 10) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Dark text on white, and each character's ``(x0, x1)`` in the image."""
    font = ImageFont.truetype(FONT, size)
    img = Image.new("L", (int(font.getlength(text)) + 2 * margin, size + 12), 255)
    ImageDraw.Draw(img).text((margin, 4), text, fill=0, font=font)
    spans = [(margin + font.getlength(text[:i]), margin + font.getlength(text[: i + 1])) for i in range(len(text))]
    return np.asarray(img), spans


@pytest.fixture(scope="module")
def rec():
    torch.set_num_threads(1)
    return load_recognizer(MODELS["english"].path, backend="torch", device="cpu")


def test_windows_cover_every_frame_once(rec):
    s = rec.frame_stride
    assert s == 4 and rec.frontend.max_width == 400
    assert rec.windows(400) == [(0, 400, 0, rec.output_length(400))]
    for width in (401, 799, 800, 1234, 5003):
        wins = rec.windows(width)
        assert wins[0][0] == 0 and wins[-1][1] == width and wins[-1][3] == rec.output_length(width)
        assert all(x1 - x0 <= 400 + s for x0, x1, _, _ in wins) and all(x0 % s == 0 for x0, _, _, _ in wins)
        kept = [f for _, _, first, last in wins for f in range(first, last)]
        assert kept == list(range(rec.output_length(width)))  # each global frame from exactly one window
        for x0, x1, first, last in wins:  # every kept frame is a frame of its window
            assert 0 <= first - x0 // s and last - x0 // s <= rec.output_length(x1 - x0)


def test_a_long_line_reads_whole_on_both_backends(rec):
    onnx = None
    try:
        onnx = load_recognizer(MODELS["english"].onnx_path, backend="onnx", threads=1)
    except ImportError:
        pass
    errors = chars = 0
    for text in LINES:
        img, _ = render_line(text)
        prepared = rec.prepare(img)
        assert prepared.shape[1] > 2.5 * rec.frontend.max_width  # several windows, not squeezed
        result = rec.read(img)
        truth = squash(text)
        errors += editdistance.eval(squash(result.text), truth)
        chars += len(truth)
        assert len(result.spans) == len(result.text)
        assert all(a[1] <= b[0] for a, b in zip(result.spans, result.spans[1:]))  # in order, no overlap
        assert result.spans[-1][1] <= rec.output_length(prepared.shape[1])
        if onnx is not None:
            assert onnx.read(img).text == result.text
    assert chars >= 150 and errors / chars <= 0.02  # clean text: the model's usual accuracy


def test_the_old_squeeze_would_have_lost_the_line(rec):
    img, _ = render_line(LINES[0])
    squeezed = rec.read(np.ascontiguousarray(img[:, :: max(1, img.shape[1] // 200)]))  # what a squeeze to ~400 px does
    assert editdistance.eval(squash(squeezed.text), squash(LINES[0])) > 20


def test_symbol_boxes_sit_on_their_glyphs(rec):
    checked = 0
    for text, margin in [("hello", 30), ("minimum", 12), (LINES[1], 10)]:
        img, glyphs = render_line(text, margin=margin)
        prepared = rec.prepare(img)
        result = rec.read_prepared([prepared])[0]
        if squash(result.text) != squash(text):
            continue  # boxes are only comparable when every glyph was read
        scale = prepared.shape[1] / img.shape[1]
        boxes = symbol_boxes(prepared, result.spans, rec.output_length(prepared.shape[1]))
        boxes = [b for b, ch in zip(boxes, result.text) if ch != " "]  # a space symbol has no glyph
        letters = [g for g, ch in zip(glyphs, text) if ch != " "]
        for (x0, x1), (g0, g1) in zip(boxes, letters):
            centre = (g0 + g1) / 2 * scale
            assert x0 <= centre <= x1, (text, (x0, x1), centre)
        assert boxes[0][0] >= margin * scale - 2  # the first box starts at its glyph, not at the left edge
        checked += 1
    assert checked >= 2


def test_a_20000_pixel_image_reads_its_text_not_nothing(rec):
    text = " ".join(["receipt total 1250 thank you for shopping"] * 20)
    font = ImageFont.truetype(FONT, 30)
    img = Image.new("L", (20000, 40), 255)
    ImageDraw.Draw(img).text((10, 2), text, fill=0, font=font)
    assert font.getlength(text) < 19900  # the whole text is on the image
    result = rec.read(np.asarray(img))
    assert editdistance.eval(squash(result.text), squash(text)) / len(squash(text)) <= 0.05
    assert rec.read(np.full((40, 20000), 255, np.uint8)).text == ""  # blank stays blank


def test_a_score_staff_wider_than_max_width_is_read_in_one_pass():
    """The clef and key signature at a staff's start decide every later pitch: a score model reads
    a staff of any width whole, never in windows (WHOLE_INPUT_KINDS)."""
    torch.set_num_threads(1)
    score = load_recognizer(MODELS["score"].path, backend="torch", device="cpu")
    assert score.kind == "score" and score.frontend.max_width == 1024
    assert score.windows(3001) == [(0, 3001, 0, score.output_length(3001))]
    staff = (np.random.default_rng(0).random((128, 1500)) * 255).astype(np.uint8)
    lp, lengths = score.log_probs([staff])
    assert score.read_prepared([staff])[0].text == score.decoder.decode(lp[0, : lengths[0]]).text
