"""Synthetic word generator: labels match, images decode, output is deterministic, fonts work offline."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import crnn_ocr.synth.colors as crop_colors
import crnn_ocr.synth.text as synth
from conftest import ROOT
from crnn_ocr.alphabet import Alphabet
from crnn_ocr.data import LmdbDataset, iter_lmdb_samples
from crnn_ocr.frontend import ImageFrontend
from crnn_ocr.preprocessing import decode_image


def test_generate_writes_matching_labels(tmp_path):
    out = tmp_path / "synth"
    assert synth.generate(out, 12, seed=3, alphabet="alphanumeric_cased") == 12
    labels = (out / "labels.txt").read_text().splitlines()
    alphabet = Alphabet.preset("alphanumeric_cased")
    ds = LmdbDataset(out, alphabet, ImageFrontend(channels=3))
    assert len(ds) == 12 and ds.summary() == "skipped 0 of 12"
    for i, label in enumerate(labels):
        item = ds[i]
        assert item is not None and item["label"] == label and item["image"].shape[:2] == (3, 32)


def test_deterministic_given_seed():
    def run(seed):
        return list(synth.iter_samples(6, seed=seed, alphabet="printable"))

    a, b, c = run(7), run(7), run(8)
    assert [t for _, t in a] == [t for _, t in b]
    assert all(np.array_equal(x, y) for (x, _), (y, _) in zip(a, b))
    assert [t for _, t in a] != [t for _, t in c]


def test_texts_stay_inside_the_alphabet():
    digits = Alphabet.preset("digits")
    texts = [t for _, t in synth.iter_samples(20, seed=1, alphabet=digits, height=24, channels=1)]
    assert all(t and digits.try_encode(t) is not None for t in texts)
    source = synth.TextSource(Alphabet.preset("printable"), ["hello", " pad", "a  b", "ok"], word_ratio=0.5)
    assert source.words == ["hello", "ok"]  # no invisible leading spaces or ambiguous double spaces
    rng = np.random.default_rng(0)
    assert all(t == t.strip() and "  " not in t for t in (source(rng) for _ in range(300)))


def test_render_word_shapes_and_fonts(tmp_path):
    fonts = synth.find_fonts(charset="abcXYZ019")
    assert fonts and not any(("LastResort" in f or "/cmsy10" in f) for f in fonts)
    rng = np.random.default_rng(0)
    for font in (fonts[0], synth.DEFAULT_FONT):
        img = synth.render_word("Wordy", font, rng, height=32)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[0] == 32 and img.shape[1] > 32
        gray = synth.render_word("Wordy", font, rng, height=32, channels=1)
        assert gray.ndim == 2 and gray.max() - gray.min() > 60  # the text stands out from the background
        assert decode_image(synth.encode_image(gray)).shape == gray.shape
    assert synth.find_fonts([tmp_path]) == [synth.DEFAULT_FONT]  # no fonts there: Pillow's own


def test_plain_style_is_dark_upright_text_on_white_and_keeps_old_seeds():
    rng = np.random.default_rng(1)
    img = synth.render_word("Hill", synth.DEFAULT_FONT, rng, height=32, channels=1, plain=True)
    assert img.shape[0] == 32 and img.shape[1] > 16
    assert np.median(img) >= 205 and img.min() <= 70  # white paper, near-black ink
    rows_inked = (img < 128).any(axis=1)
    assert not rows_inked[0] and not rows_inked[-1]  # upright and unclipped: margins above and below
    # plain_ratio=0 draws nothing extra: existing datasets regenerate bit for bit
    old = list(synth.iter_samples(5, seed=4, channels=1))
    same = list(synth.iter_samples(5, seed=4, channels=1, plain_ratio=0.0))
    assert all(np.array_equal(a, b) and s == t for (a, s), (b, t) in zip(old, same))
    mixed = list(synth.iter_samples(40, seed=4, channels=1, plain_ratio=0.5))
    whites = sum(np.median(im) >= 205 and im.min() <= 70 for im, _ in mixed)
    assert 10 <= whites <= 35
    with pytest.raises(ValueError, match="plain_ratio"):
        next(synth.iter_samples(1, plain_ratio=1.5))


def test_cli(tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("alpha\nbeta\n")
    res = subprocess.run(
        [sys.executable, str(ROOT / "datasets" / "synth_text.py"), "--out", str(tmp_path / "db"), "--count", "5",
         "--seed", "1", "--words", str(words), "--gray", "--png-dir", str(tmp_path / "png")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"wrote 5 samples to {tmp_path / 'db'}")
    ds = LmdbDataset(tmp_path / "db", Alphabet.preset("alphanumeric"))
    assert len(ds) == 5
    gt = (tmp_path / "png" / "gt.txt").read_text().splitlines()
    assert gt == [f"{i:09d}.png\t{w}" for i, w in enumerate((tmp_path / "db" / "labels.txt").read_text().split(), 1)]
    for (_, data, label), line in zip(iter_lmdb_samples(tmp_path / "db"), gt):  # the same bytes as the LMDB
        assert (tmp_path / "png" / line.split("\t")[0]).read_bytes() == data and line.endswith(label)
    assert synth.main(["--out", str(tmp_path / "x"), "--count", "0"]) == 2  # bad input: status 2, no traceback


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_encode_formats(fmt):
    img = np.random.default_rng(0).integers(0, 256, (32, 40, 3), dtype=np.uint8)
    assert decode_image(synth.encode_image(img, fmt), 3).shape == (32, 40, 3)


def test_dot_matrix_style_is_deterministic_and_drawn_in_dots(tmp_path):
    a = list(synth.iter_samples(8, seed=5, style="dot-matrix", words=["Platform", "EXIT", "gate"]))
    b = list(synth.iter_samples(8, seed=5, style="dot-matrix", words=["Platform", "EXIT", "gate"]))
    assert [t for _, t in a] == [t for _, t in b] and all(np.array_equal(x, y) for (x, _), (y, _) in zip(a, b))
    for img, text in a:
        assert img.shape[0] == 32 and img.shape[2] == 3 and img.shape[1] > 8 * len(text)
    # dots, not strokes: along a lit row the brightness rises and falls many times
    glyphs = synth.render_dot_matrix("HHHH", np.random.default_rng([0, 1]), height=64, channels=1)
    row = glyphs[glyphs.shape[0] // 2].astype(float)
    crossings = np.count_nonzero(np.diff(np.sign(row - row.mean())))
    assert crossings >= 12
    with pytest.raises(ValueError, match="style must be one of"):
        next(synth.iter_samples(1, style="neon"))


def _crop(text_rgb, bg_rgb, seed):
    """A 32x96 crop: two filled 'letters' of text colour on a background, with a little noise."""
    rng = np.random.default_rng(seed)
    img = np.empty((32, 96, 3), np.float32)
    img[:] = bg_rgb
    img[8:24, 20:40] = text_rgb
    img[8:24, 56:76] = text_rgb
    return np.clip(img + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8)


def test_crop_colors_finds_text_and_background_pairs(tmp_path):
    import cv2

    pairs = {"red_on_white": ((200, 20, 20), (245, 245, 240)), "white_on_blue": ((250, 250, 250), (20, 30, 120))}
    lines = []
    for name, (text_rgb, bg_rgb) in pairs.items():
        for k in range(5):
            path = tmp_path / f"{name}_{k}.png"
            cv2.imwrite(str(path), cv2.cvtColor(_crop(text_rgb, bg_rgb, k), cv2.COLOR_RGB2BGR))
            lines.append(f"{path.name}\tword")
    lines.append("missing.png\tword")
    (tmp_path / "gt.tsv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "colors.tsv"
    assert crop_colors.main(["--labels", str(tmp_path / "gt.tsv"), "--out", str(out), "--clusters", "2"]) == 0
    palette = synth.Palette.load(out)
    assert sorted(palette.p.tolist()) == [0.5, 0.5]
    found = sorted(palette.pairs.round().astype(int).tolist())
    want = sorted([list(t), list(b)] for t, b in pairs.values())
    assert np.abs(np.array(found) - np.array(want)).max() <= 3  # text colour first, background second
    ink, paper = palette.sample(np.random.default_rng(0))
    assert ink.shape == paper.shape == (3,)
    bad = tmp_path / "bad.tsv"
    bad.write_text("# header\n1 2 3 4 5 6 7\n1 2 three\n")
    with pytest.raises(ValueError, match=r"bad.tsv:3: expected"):
        synth.Palette.load(bad)


def _edge_ink(img: np.ndarray) -> bool:
    """Whether ink (far from the crop's median) touches the left or right column or the top or bottom row."""
    med = float(np.median(img))
    edges = np.concatenate([img[:, 0], img[:, -1], img[0], img[-1]]).astype(float)
    return bool((np.abs(edges - med) > 60).mean() > 0.04)


def test_scene_colours_photos_and_detector_cuts(tmp_path):
    import cv2
    import matplotlib

    font = str(synth.Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")  # the same on every machine
    palette = synth.Palette(np.array([[250, 250, 0, 0, 0, 200]]), np.array([1]))  # yellow on blue
    scene = synth.Scene(palette=palette, palette_ratio=1.0)
    img = synth.render_word("Colour", font, np.random.default_rng(3), scene=scene)
    assert np.abs(np.median(img.reshape(-1, 3), axis=0) - [0, 0, 200]).max() <= 25  # the real crop's background
    # a photograph's texture under the text: strong stripes, kept 40 levels of luminance from the ink
    stripes = np.zeros((400, 400, 3), np.uint8)
    stripes[:, ::8] = 255
    stripes[:, 1::8] = 255
    cv2.imwrite(str(tmp_path / "stripes.png"), stripes)
    photos = synth.PhotoBackgrounds([tmp_path])
    flat, textured = [], []
    for seed in range(12):
        for scene, out in ((synth.Scene(), flat), (synth.Scene(photos=photos, photo_ratio=1.0), textured)):
            gray = synth.render_word("mm", font, np.random.default_rng(seed), channels=1, scene=scene)
            out.append(float(np.abs(np.diff(gray[:3].astype(float), axis=1)).mean()))  # top margin: texture only
    assert np.mean(textured) > 2 * np.mean(flat)
    # a near-flat, strongly tinted photograph is not amplified into a crop of one flat colour (it was, for
    # 0.7% of the realistic words: a label on a blank image): the word stays 40 levels from its background
    (tmp_path / "tint").mkdir()
    tint = np.full((400, 400, 3), (20, 200, 40), np.uint8)
    tint[::50, ::50] = (21, 201, 41)  # one level of luminance texture
    cv2.imwrite(str(tmp_path / "tint" / "tint.png"), tint)
    tinted = synth.Scene(photos=synth.PhotoBackgrounds([tmp_path / "tint"]), photo_ratio=1.0)
    for seed in range(12):
        gray = synth.render_word("mm", font, np.random.default_rng(seed), channels=1, scene=tinted)
        assert int(gray.max()) - int(gray.min()) >= 40, seed
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no photographs"):
        synth.PhotoBackgrounds([tmp_path / "empty"])
    # detector-like cuts: part of a neighbouring letter, line or edge reaches the crop's border
    cut = [_edge_ink(synth.render_word("word", font, np.random.default_rng(s), channels=1, scene=synth.Scene(neighbors=1.0))) for s in range(40)]
    clean = [_edge_ink(synth.render_word("word", font, np.random.default_rng(s), channels=1, scene=synth.Scene())) for s in range(40)]
    assert sum(cut) >= 16 and sum(clean) <= 6, (sum(cut), sum(clean))  # 23 and 1 here
    with pytest.raises(ValueError, match="neighbors must be in"):
        synth.Scene(neighbors=2.0)


def test_patterns_and_scene_in_the_cli(tmp_path):
    source = synth.TextSource(Alphabet.preset("printable"), ["shop", "fresh"], pattern_ratio=1.0)
    rng = np.random.default_rng(0)
    texts = [source(rng) for _ in range(300)]
    assert all(Alphabet.preset("printable").try_encode(t) is not None and t == t.strip() for t in texts)
    assert sum(any(c.isdigit() for c in t) for t in texts) >= 120
    assert any(t.startswith("$") for t in texts) and any(t.startswith("www.") for t in texts)
    digits_only = synth.TextSource(Alphabet.preset("digits"), [], pattern_ratio=1.0)
    assert all(t.isdigit() for t in (digits_only(rng) for _ in range(50)))  # patterns it cannot write fall back
    (tmp_path / "colors.tsv").write_text("0 0 0 255 255 255 3\n")
    args = ["--out", str(tmp_path / "db"), "--count", "4", "--colors", str(tmp_path / "colors.tsv"),
            "--neighbors", "0.5", "--curve", "0.5", "--wide-margin", "0.5", "--pattern-ratio", "0.5"]  # fmt: skip
    assert synth.main(args) == 0 and len(LmdbDataset(tmp_path / "db", Alphabet.preset("alphanumeric"))) == 4
    assert synth.main(["--out", str(tmp_path / "x"), "--count", "2", "--colors", str(tmp_path / "nope.tsv")]) == 2
    assert synth.main(["--out", str(tmp_path / "y"), "--count", "2", "--photos", str(tmp_path / "nope")]) == 2


def test_fonts_that_draw_greek_at_latin_code_points_are_left_out(tmp_path):
    import shutil

    import matplotlib

    dejavu = synth.Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in ("DejaVuSans.ttf", "ellenita.ttf", "alfa-beta.ttf"):
        shutil.copy(dejavu, tmp_path / name)
    assert [synth.Path(f).name for f in synth.find_fonts([tmp_path], "abc")] == ["DejaVuSans.ttf"]


def test_importing_the_generators_leaves_optional_dependencies_unloaded():
    """``import crnn_ocr.synth`` / ``crnn_ocr.music`` load nothing heavy; each generator imports its
    optional dependencies (fontTools, wordfreq, verovio, cairosvg, music21, soundfile) on use."""
    code = (
        "import sys\n"
        "import crnn_ocr, crnn_ocr.synth, crnn_ocr.music\n"
        "light = sorted(m for m in ('torch', 'cv2', 'numpy') if m in sys.modules)\n"
        "import crnn_ocr.synth.text, crnn_ocr.synth.colors, crnn_ocr.synth.speech, crnn_ocr.synth.digits\n"
        "import crnn_ocr.synth.music\n"
        "optional = ('fontTools', 'wordfreq', 'verovio', 'cairosvg', 'music21', 'soundfile')\n"
        "print(light, sorted(m for m in optional if m in sys.modules))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["[]", "[]"]


def test_shaped_words_are_kerned_and_shaping_0_keeps_old_samples(tmp_path, monkeypatch, capsys):
    """``shaping``: libraqm lays the word out (kerning, ligatures); 0 keeps older seeds' samples."""
    import matplotlib

    font = str(synth.Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")
    basic = synth.render_word("AVAVAV", font, np.random.default_rng(1), plain=True, channels=1)
    shaped = synth.render_word("AVAVAV", font, np.random.default_rng(1), plain=True, channels=1, shaped=True)
    assert basic.shape == (32, 97) and shaped.shape == (32, 91)  # DejaVu kerns A-V pairs together
    # the share: a draw only when > 0, so shaping=0 renders older seeds' samples unchanged
    none = list(synth.iter_samples(6, seed=4, fonts=[font], shaping=0.0))
    old = list(synth.iter_samples(6, seed=4, fonts=[font]))
    assert all(a[1] == b[1] and np.array_equal(a[0], b[0]) for a, b in zip(none, old))
    every = list(synth.iter_samples(6, seed=4, fonts=[font], shaping=1.0))
    assert [t for _, t in every] == [t for _, t in old]  # the text is drawn first either way
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"shaping must be in \[0, 1\]"):
            synth.check_shaping(bad)
    monkeypatch.setattr(synth.features, "check", lambda name: False)
    synth.check_shaping(0.0)
    with pytest.raises(ValueError, match="libraqm"):
        synth.WordRenderer(fonts=[font], shaping=0.5)
    assert synth.main(["--out", str(tmp_path / "x"), "--count", "2", "--shaping", "0.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("synth_text: error: shaping > 0 needs Pillow built with libraqm") and "\n" not in err
