"""Test-time views (crnn_ocr.views): how each view prepares an image, how the views' readings
are combined, and reading through the Recognizer and infer.py --views."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import render_word
from crnn_ocr.alphabet import Alphabet
from crnn_ocr.decoding import ctc_log_likelihood, greedy_decode, viterbi_align
from crnn_ocr.evaluation import evaluate
from crnn_ocr.pretrained import MODELS
from crnn_ocr.recognizer import load_recognizer
from crnn_ocr.views import DEFAULT_VIEWS, Recheck, View, check_frontend, check_views, combine

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rec():
    torch.set_num_threads(1)
    return load_recognizer(MODELS["english"].path, backend="torch", device="cpu")


def test_each_view_pads_trims_and_stretches_as_documented():
    img = np.arange(40 * 60, dtype=np.uint8).reshape(40, 60)
    assert np.array_equal(View().apply(img, 40, 1.0), img)  # the model's height already: untouched
    bordered = View(border=0.1).apply(img, 48, 1.0)  # 4 px on every side, no resize at 48 rows
    assert bordered.shape == (48, 68)
    assert np.array_equal(bordered[4:44, 4:64], img) and np.array_equal(bordered[0, 4:64], img[0])
    assert np.array_equal(bordered[:, 0], bordered[:, 4])  # edge pixels repeated
    sided = View(side=0.25).apply(img, 40, 1.0)  # 10 columns left and right, rows unchanged
    assert sided.shape == (40, 80) and np.array_equal(sided[:, 10:70], img) and np.array_equal(sided[:, 0], img[:, 0])
    trimmed = View(trim=0.05).apply(img, 36, 1.0)  # 2 rows off the top and the bottom
    assert np.array_equal(trimmed, img[2:38])
    assert View(width=1.5).apply(img, 40, 1.0).shape == (40, 90)
    assert View(width=1.5).apply(img, 20, 2.0).shape == (20, 90)  # on top of the model's own width scale
    assert View(trim=0.3).apply(np.zeros((16, 60), np.uint8), 32, 1.0) is None  # 16 - 2*5 rows < 8: left out
    assert View(trim=0.2).apply(np.zeros((16, 60), np.uint8), 10, 1.0).shape == (10, 60)  # 16 - 2*3 rows: made
    assert View(border=0.01).apply(np.zeros((10, 30), np.uint8), 12, 1.0).shape == (12, 32)  # at least one pixel


@pytest.mark.parametrize("kwargs", [{"width": 0}, {"border": -0.1}, {"trim": 0.5}, {"side": 1.0}])
def test_a_view_out_of_range_is_refused(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        View(**kwargs)


def test_check_views_refuses_nothing_and_other_objects():
    assert check_views([View()]) == (View(),)
    with pytest.raises(ValueError, match="at least one view"):
        check_views([])
    with pytest.raises(ValueError, match="View objects, got float"):
        check_views([1.0])


def _frames(rows: list[list[float]]) -> np.ndarray:
    p = np.asarray(rows, dtype=np.float64)
    return np.log(p / p.sum(axis=1, keepdims=True))


def test_combine_picks_the_highest_mean_likelihood_and_aligns_it_in_the_first_view():
    abc = Alphabet("ab")
    a = _frames([[0.2, 0.45, 0.35], [0.6, 0.2, 0.2], [0.2, 0.4, 0.4]])  # view 0: greedy "aa"
    b = _frames([[0.1, 0.1, 0.8], [0.1, 0.1, 0.8], [0.1, 0.2, 0.7], [0.9, 0.05, 0.05]])  # view 1: greedy "b"
    readings = [greedy_decode(a, abc), greedy_decode(b, abc)]
    assert [r.text for r in readings] == ["aa", "b"]
    means = {ids: (ctc_log_likelihood(a, ids) + ctc_log_likelihood(b, ids)) / 2 for ids in [(1, 1), (2,)]}
    winner = max(means, key=means.get)
    assert winner == (2,)  # view 1 is sure; view 0 gives "b" a fair chance too
    out = combine(readings, [a, b])
    assert out.token_ids == (2,) and out.text == "b"
    assert out.score == pytest.approx(means[(2,)], abs=1e-12) and out.confidence == pytest.approx(np.exp(means[(2,)]))
    assert out.spans == viterbi_align(a, (2,))[1]  # frames of the first view
    same = combine([readings[0], readings[0]], [a, a])  # one candidate: the first view's spans kept
    assert same.token_ids == (1, 1) and same.spans == readings[0].spans
    assert same.score == pytest.approx(ctc_log_likelihood(a, (1, 1)))


def test_combine_falls_back_to_the_first_reading_when_no_candidate_fits_every_view():
    abc = Alphabet("ab")
    long = _frames([[0.1, 0.8, 0.1], [0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.8, 0.1, 0.1], [0.1, 0.8, 0.1]])  # "aaa"
    short = _frames([[0.1, 0.1, 0.8]])  # one frame: "aaa" cannot fit, "b" can
    readings = [greedy_decode(long, abc), greedy_decode(short, abc)]
    assert [r.text for r in readings] == ["aaa", "b"]
    out = combine(readings, [long, short])
    assert out.text == "b"  # "aaa" needs three frames: the only candidate that fits both views
    none_fit = combine([readings[0]], [long]), combine([readings[0], readings[0]], [long, short])
    assert none_fit[0].text == "aaa" and none_fit[1] is readings[0]
    with pytest.raises(ValueError, match="one reading per view"):
        combine(readings, [long])


def test_one_plain_view_reads_as_read_does(rec):
    img = render_word("harbour", height=40)
    plain = rec.read(img)
    alone = rec.read_views([img], views=[View()])[0]
    assert (alone.text, alone.token_ids, alone.spans) == (plain.text, plain.token_ids, plain.spans)
    assert alone.text == "harbour"
    frames = rec.frames_prepared([rec.prepare(img)])[0]
    assert alone.score == pytest.approx(ctc_log_likelihood(frames, plain.token_ids), abs=1e-9)  # all alignments
    assert alone.score >= plain.score  # greedy's one best path is a lower bound


def test_default_views_read_words_and_files_alike(rec, tmp_path):
    words = ["station", "Coffee", "2024"]
    paths = []
    for w in words:
        paths.append(tmp_path / f"{w}.png")
        cv2.imwrite(str(paths[-1]), render_word(w, height=36))
    read = rec.read_views(paths)
    assert [r.text for r in read] == words
    sets = [rec.prepare_views(p) for p in paths]
    assert [len(s) for s in sets] == [len(DEFAULT_VIEWS)] * 3 and all(np.array_equal(s[0], rec.prepare(p)) for s, p in zip(sets, paths))
    files = list(rec.read_files(paths, views=DEFAULT_VIEWS, workers=2, batch_size=4))
    assert [f[0] for f in files] == paths
    for f, r in zip(files, read):  # batching changes no reading (the scores only by float rounding)
        assert (f[2].text, f[2].token_ids, f[2].spans) == (r.text, r.token_ids, r.spans)
        assert f[2].score == pytest.approx(r.score, abs=1e-6)
    assert all(np.array_equal(f[1], rec.prepare(p)) for f, p in zip(files, paths))  # the first view's input
    # a view that does not apply is left out; the combination is over the rest
    small = render_word("ok", height=12)
    assert len(rec.prepare_views(small, [View(), View(trim=0.3)])) == 1


def test_views_refuse_a_speech_model(tmp_path):
    speech = load_recognizer(MODELS["spoken_digits"].path, backend="torch", device="cpu")
    message = "test-time views apply to crnn_ocr's image models; this model's front-end is 'audio'"
    with pytest.raises(ValueError, match=message):
        speech.prepare_views(np.zeros(8000, np.float32))
    with pytest.raises(ValueError, match=message):
        check_frontend(speech.frontend)
    reported: list[str] = []
    with pytest.raises(ValueError, match=message):  # once, up front: not one report per file
        list(speech.read_files([tmp_path / "a.wav", tmp_path / "b.wav"], views=DEFAULT_VIEWS,
                               on_error=lambda p, m: reported.append(m)))
    assert reported == []
    with pytest.raises(ValueError, match=message):
        evaluate(speech, [("a", b"RIFF", "one")], views=DEFAULT_VIEWS)


def _infer(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "tools" / "infer.py"), *args], capture_output=True, text=True,
                          env={"NO_ALBUMENTATIONS_UPDATE": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})


def test_infer_views_prints_the_agreed_reading_and_refuses_audio(tmp_path):
    img = tmp_path / "word.png"
    cv2.imwrite(str(img), render_word("garden", height=36))
    out = _infer("--image", str(img), "--views")
    assert out.returncode == 0, out.stderr
    path, text, confidence = out.stdout.strip().split("\t")
    assert (path, text) == (str(img), "garden") and 0 < float(confidence) <= 1
    wav = tmp_path / "a.wav"
    wav.write_bytes(b"RIFF")
    bad = _infer("--audio", str(wav), "--views")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == ["infer.py: error: --views: test-time views are for images; they do not apply to --audio"]


def test_evaluate_with_views_reads_as_read_views_and_still_skips_bad_files(rec, tmp_path):
    from crnn_ocr.evaluation import evaluate

    words = ["market", "Bridge"]
    for w in words:
        cv2.imwrite(str(tmp_path / f"{w}.png"), render_word(w, height=36))
    (tmp_path / "bad.png").write_bytes(b"not an image")
    samples = [(str(tmp_path / f"{w}.png"), tmp_path / f"{w}.png", w) for w in words]
    result = evaluate(rec, [samples[0], ("bad", tmp_path / "bad.png", "x"), samples[1]], batch_size=2, views=DEFAULT_VIEWS)
    assert [p[2] for p in result.predictions] == [r.text for r in rec.read_views([s[1] for s in samples])] == words
    assert result.skipped == 1 and result.first_skipped == ("bad",)
    speech = load_recognizer(MODELS["spoken_digits"].path, backend="torch", device="cpu")
    with pytest.raises(ValueError, match="front-end is 'audio'"):
        evaluate(speech, [], views=DEFAULT_VIEWS)
    (tmp_path / "gt.txt").write_text("market.png\tmarket\nBridge.png\tBridge\n")
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "evaluate.py"), "--labels", str(tmp_path / "gt.txt"), "--views"],
                         capture_output=True, text=True, env={"NO_ALBUMENTATIONS_UPDATE": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("2 samples: word accuracy 1.0000 (case-insensitive alphanumeric 1.0000), CER 0.0000")


# ------------------------------------------------------------------ a second look at unsure readings
def test_recheck_checks_its_settings_and_round_trips():
    r = Recheck((View(width=1.2, trim=0.05), View(width=0.9)), 0.4)
    assert Recheck.from_dict(r.to_dict()) == r
    assert r.to_dict() == {"views": [{"width": 1.2, "border": 0.0, "side": 0.0, "trim": 0.05},
                                     {"width": 0.9, "border": 0.0, "side": 0.0, "trim": 0.0}], "below": 0.4}
    assert Recheck.from_dict({"views": [{"width": 1.1}], "below": 1}) == Recheck((View(width=1.1),), 1.0)
    assert Recheck([View(width=1.1)], 0.5).views == (View(width=1.1),)  # any sequence, kept as a tuple
    for below in (0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"Recheck below must be a confidence in \(0, 1\]"):
            Recheck((View(),), below)
    with pytest.raises(ValueError, match="views must be View objects, got float"):
        Recheck((1.15,), 0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one view"):
        Recheck((), 0.5)
    with pytest.raises(ValueError, match="a recheck needs 'views'"):
        Recheck.from_dict({"width": 1.1, "below": 0.5})
    img = np.arange(12 * 50, dtype=np.uint8).reshape(12, 50)  # a prepared input: the views keep its height
    made = Recheck((View(width=1.2), View(trim=0.3), View(width=0.9)), 0.5).apply(img)
    assert [m.shape for m in made] == [(12, 60), (12, 45)]  # the trim leaves too few rows: not made


def test_recheck_reads_unsure_inputs_again_and_combines_the_readings(rec):
    images = [render_word(w, height=36) for w in ("harbour", "Coffee", "minimum", "2024")]
    plain = load_recognizer(MODELS["english"].path, backend="torch", device="cpu", recheck=False)
    assert plain.recheck is None
    always = Recheck((View(width=0.85), View(width=1.15)), 1.0)  # every confidence is below 1: all read again
    twice = load_recognizer(MODELS["english"].path, backend="torch", device="cpu", recheck=always)
    prepared = [plain.prepare(im) for im in images]
    expected = []
    for p in prepared:
        frames = plain.frames_prepared([p, *always.apply(p)])
        expected.append(combine(plain.decoder.decode_batch(frames), frames))
    got = twice.read_batch(images, batch_size=3)
    for g, e, p in zip(got, expected, prepared):
        assert (g.text, g.token_ids, g.spans) == (e.text, e.token_ids, e.spans)
        assert g.score == pytest.approx(e.score, abs=1e-6)
        assert g.spans[-1][1] <= plain.output_length(p.shape[1])  # spans stay in the first reading's frames
    assert [r.text for r in got] == ["harbour", "Coffee", "minimum", "2024"]
    # a threshold no reading is under: the plain readings, untouched
    never = load_recognizer(MODELS["english"].path, backend="torch", device="cpu", recheck=Recheck(always.views, 1e-12))
    for a, b in zip(never.read_batch(images), plain.read_batch(images)):
        assert (a.text, a.token_ids, a.score, a.spans) == (b.text, b.token_ids, b.score, b.spans)
    # read_files reads as read_batch does
    files = [r for _, _, r in twice.read_files(images, workers=1, batch_size=2)]
    assert [(f.text, f.token_ids) for f in files] == [(g.text, g.token_ids) for g in got]


def test_recheck_only_where_the_first_reading_is_unsure(rec):
    images = [render_word(w, height=36) for w in ("station", "lighthouse")]
    plain = load_recognizer(MODELS["english"].path, backend="torch", device="cpu", recheck=False)
    readings = plain.read_batch(images)
    assert readings[0].confidence != readings[1].confidence
    below = (readings[0].confidence + readings[1].confidence) / 2  # between the two
    unsure = int(readings[1].confidence < readings[0].confidence)
    seen = load_recognizer(MODELS["english"].path, backend="torch", device="cpu", recheck=Recheck((View(width=1.3),), below))
    calls: list[list[tuple[int, ...]]] = []
    original = seen.frames_prepared
    seen.frames_prepared = lambda xs, batch_size=32: calls.append([x.shape for x in xs]) or original(xs, batch_size)  # type: ignore[method-assign]
    seen.read_batch(images)
    width = plain.prepare(images[unsure]).shape[1]
    assert calls == [[(32, round(width * 1.3))]]  # one more reading, of the less sure word only
    # a line wider than the model's window is read once, whatever its confidence
    line = np.hstack([render_word(w, height=36) for w in ("the", "museum", "opens", "at", "nine", "and", "closes", "at", "five")])
    always = load_recognizer(MODELS["english"].path, backend="torch", device="cpu", recheck=Recheck(below=1.0))
    assert always.prepare(line).shape[1] > always.frontend.max_width
    once = plain.read(line)
    again = always.read(line)
    assert (again.text, again.token_ids, again.score, again.spans) == (once.text, once.token_ids, once.score, once.spans)


def test_recheck_is_refused_for_audio_and_bad_values():
    speech = load_recognizer(MODELS["spoken_digits"].path, backend="torch", device="cpu")
    assert speech.recheck is None
    with pytest.raises(ValueError, match="front-end is 'audio'"):
        load_recognizer(MODELS["spoken_digits"].path, backend="torch", device="cpu", recheck=Recheck())
    with pytest.raises(ValueError, match="recheck must be True, False, None or a crnn_ocr.views.Recheck, got 0.5"):
        load_recognizer(MODELS["english"].path, backend="torch", device="cpu", recheck=0.5)


def test_infer_reads_with_the_shipped_recheck_unless_told_not_to(tmp_path):
    img = tmp_path / "word.png"
    cv2.imwrite(str(img), render_word("Pillar", height=36))
    with_it = load_recognizer(MODELS["english"].path, backend="torch", device="cpu")
    assert with_it.recheck == Recheck((View(width=0.85), View(width=1.15)), 0.5)  # shipped with the model
    once = load_recognizer(MODELS["english"].path, backend="torch", device="cpu", recheck=False).read(str(img))
    out = _infer("--image", str(img), "--no-recheck", "--backend", "torch")
    assert out.returncode == 0, out.stderr
    path, text, confidence = out.stdout.strip().split("\t")
    assert (text, float(confidence)) == (once.text, pytest.approx(once.confidence, abs=1e-4))


def test_evaluate_no_recheck_reads_once(tmp_path):
    words = ["million", "flowers", "Illinois"]  # read with confidence under 0.5 (rendered so): the english model rechecks them
    for w in words:
        cv2.imwrite(str(tmp_path / f"{w}.png"), render_word(w, height=36))
    (tmp_path / "gt.txt").write_text("".join(f"{w}.png\t{w}\n" for w in words))
    once = load_recognizer(MODELS["english"].path, backend="torch", device="cpu", recheck=False)
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "evaluate.py"), "--labels", str(tmp_path / "gt.txt"), "--no-recheck",
                          "--predictions", str(tmp_path / "p.tsv")], capture_output=True, text=True,
                         env={"NO_ALBUMENTATIONS_UPDATE": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    rows = [line.split("\t") for line in (tmp_path / "p.tsv").read_text().splitlines()]
    expected = [once.read(str(tmp_path / f"{w}.png")) for w in words]
    assert [(r[2], round(float(r[3]), 4)) for r in rows] == [(e.text, round(e.confidence, 4)) for e in expected]
    rechecked = load_recognizer(MODELS["english"].path, backend="torch", device="cpu")
    assert all(e.confidence < 0.5 for e in expected)
    assert [round(r.confidence, 4) for r in rechecked.read_batch([str(tmp_path / f"{w}.png") for w in words])] != \
        [round(e.confidence, 4) for e in expected]  # the flag is what made the difference
