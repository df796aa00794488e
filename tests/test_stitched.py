"""Real crops cut between their letters and joined again (crnn_ocr.synth.stitched, datasets/stitch_crops.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from crnn_ocr.data import iter_lmdb_samples, write_lmdb
from crnn_ocr.synth.stitched import Aligned, StitchStats, glyph_cuts, join, main, stitch, stitched_samples
from crnn_ocr.visualize import ink_profile


def blocks(widths: list[int], gap: int = 3, h: int = 20, dark_on_light: bool = True) -> np.ndarray:
    """A gray 'word': one solid block per letter, ``gap`` blank columns between and around them."""
    w = gap + sum(wd + gap for wd in widths)
    bg, fg = (230, 20) if dark_on_light else (20, 230)
    image = np.full((h, w), bg, np.uint8)
    x = gap
    for wd in widths:
        image[3:-3, x : x + wd] = fg
        x += wd + gap
    return image


def test_ink_profile_counts_the_texts_polarity_either_way():
    for dark in (True, False):
        profile = ink_profile(blocks([4, 4], dark_on_light=dark))
        assert profile.tolist() == [0] * 3 + [14] * 4 + [0] * 3 + [14] * 4 + [0] * 3


def test_cuts_fall_in_the_gaps_next_to_each_letters_first_frame():
    image = blocks([8, 8, 8, 8], gap=4)  # letters at columns 4-11, 16-23, 28-35, 40-47; W = 52
    # 13 frames of 4 columns; each letter first emitted at its left edge, one frame either way
    cuts = glyph_cuts(image, [0, 4, 7, 10], 13)
    assert cuts[0] == 0 and cuts[-1] == 52
    for c, left in zip(cuts[1:-1], [16, 28, 40]):
        assert left - 4 <= c < left  # in the blank gap before the letter, never through a glyph
    assert cuts == sorted(cuts)


def test_pieces_and_joins_keep_the_letters_they_name():
    gray = blocks([6, 6, 6], gap=4)
    a = Aligned(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR), "abc", [0, 12, 22, gray.shape[1]])
    image, text = a.piece(1, 3)
    assert text == "bc" and image.shape == (20, gray.shape[1] - 12, 3)
    tall = np.zeros((40, 10, 3), np.uint8)
    joined = join([image, tall])
    assert joined.shape == (40, 2 * image.shape[1] + 10, 3)
    assert join([np.zeros((100, 50, 3), np.uint8)]).shape == (64, 32, 3)  # scaled to at most 64 rows


def pool() -> list[list[Aligned]]:
    def crop(label: str, shade: int) -> Aligned:
        w = 10 * len(label)
        return Aligned(np.full((20, w, 3), shade, np.uint8), label, list(range(0, w + 1, 10)))

    return [[crop("abcdef", 10), crop("ghij", 20)], [crop("KLMNOPQ", 200)]]


def test_stitched_samples_are_seeded_and_made_of_their_sources_letters():
    p = pool()
    seen = set()
    for k in range(200):
        image, text = stitch(p, k, seed=3)
        again, same = stitch(p, k, seed=3)
        assert same == text and np.array_equal(again, image)
        assert 2 <= len(text) <= 25 and image.shape[:2] == (20, 10 * len(text))  # each letter keeps its 10 columns
        source = "abcdefghij" if text[0].islower() else "KLMNOPQ"
        assert all(c in source for c in text)  # never two sources in one sample
        shades = set(np.unique(image).tolist())
        assert shades <= ({10, 20} if text[0].islower() else {200})
        seen.add(text)
    assert any(t[0] in "abcdef" and t[-1] in "ghij" for t in seen)  # joins across two crops
    assert any(len(t) < 6 and t in "abcdef" and t[0] != "a" for t in seen)  # pieces from inside a word
    assert [stitch(p, k, seed=4)[1] for k in range(20)] != [stitch(p, k, seed=3)[1] for k in range(20)]


def test_the_teacher_keeps_only_what_it_reads_as_the_new_label():
    p = pool()
    labels = [stitch(p, k, seed=1)[1] for k in range(30)]

    reads: list[bytes] = []

    def read(images: list[bytes]) -> list[str]:  # a teacher that reads only words of three letters or fewer
        batch = labels[len(reads) : len(reads) + len(images)]
        reads.extend(images)
        return [label.upper() if len(label) <= 3 else "?" for label in batch]  # case does not count

    stats = StitchStats()
    kept = list(stitched_samples(p, 30, 1, read, batch=7, stats=stats))
    assert [label for _, label in kept] == [label for label in labels if len(label) <= 3]
    assert (stats.made, stats.kept) == (30, len(kept)) and len(reads) == 30
    assert len(list(stitched_samples(p, 30, 1))) == 30  # without a teacher, everything


def test_cli_rejects_bad_arguments_with_one_line(tmp_path, capsys):
    png = cv2.imencode(".png", blocks([5, 5]))[1].tobytes()
    write_lmdb(tmp_path / "real", [(png, "ab")])
    model = tmp_path / "model.pt"
    model.write_bytes(b"")
    real = str(tmp_path / "real")
    cases = [
        (["--data", str(tmp_path / "none"), "--aligner", str(model)], "--data"),
        (["--data", real, "--aligner", str(tmp_path / "missing.pt")], "--aligner"),
        (["--data", real, "--aligner", "klingon"], "--aligner"),
        (["--data", real, "--aligner", str(model), "--teacher", str(tmp_path / "t.onnx")], "--teacher"),
        (["--data", real, "--aligner", str(model), "--count", "0"], "--count"),
        (["--data", real, "--aligner", str(model), "--piece-share", "1.5"], "--piece-share"),
        (["--data", real, "--aligner", str(model), "--out", real], "--out"),
    ]
    for args, name in cases:
        if "--out" not in args:
            args = args + ["--out", str(tmp_path / "out")]
        with pytest.raises(SystemExit) as e:
            main(args)
        assert e.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert name in err and "Traceback" not in err


def test_the_shipped_model_cuts_rendered_words_it_reads(tmp_path, capsys):
    from pathlib import Path

    from PIL import Image, ImageDraw, ImageFont

    import crnn_ocr

    try:
        font = ImageFont.truetype("DejaVuSans.ttf", 28)
    except OSError:
        pytest.skip("DejaVu Sans not installed")
    samples = []
    for word in ["Hotel", "PARKING", "Street"]:
        im = Image.new("RGB", (200, 40), (240, 240, 240))
        ImageDraw.Draw(im).text((6, 4), word, font=font, fill=(10, 10, 10))
        arr = np.asarray(im)[:, : 16 + int(font.getlength(word))]
        samples.append((cv2.imencode(".png", np.ascontiguousarray(arr[:, :, ::-1]))[1].tobytes(), word))
    write_lmdb(tmp_path / "real", samples)
    model = Path(crnn_ocr.__file__).parent / "weights" / "english_crnn_compact.pt"
    assert main(["--data", str(tmp_path / "real"), "--aligner", str(model), "--count", "20", "--seed", "2",
                 "--out", str(tmp_path / "out")]) == 0
    assert "3 crops: 3 aligned" in capsys.readouterr().out
    made = list(iter_lmdb_samples(tmp_path / "out"))
    assert len(made) == 20 and all(2 <= len(label) <= 25 and set(label) <= set("HotelPARKINGStre") for _, _, label in made)
    from crnn_ocr.recognizer import load_recognizer
    from crnn_ocr.synth.stitched import align_crops

    aligned = align_crops(samples, load_recognizer(model), StitchStats())
    assert [a.label for a in aligned] == ["Hotel", "PARKING", "Street"]
    for a in aligned:  # every cut within 3 px of where the font's advance puts the boundary between two letters
        bounds = [6 + font.getlength(a.label[:i]) for i in range(1, len(a.label))]
        assert len(a.cuts) == len(a.label) + 1 and all(abs(c - b) <= 3 for c, b in zip(a.cuts[1:-1], bounds)), (a.cuts, bounds)
