"""Classifiers and taggers through the CLIs: two steps of tools/train.py --kind classify and --kind
tag on tone clips made in tmp_path, what infer.py prints, the bad inputs (one line, exit 2,
nothing lost), and the ONNX export read back with the same logits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT

pytest.importorskip("soundfile")
pytest.importorskip("scipy")

from test_tools import ENV, run_tool  # noqa: E402

SR = 8000
TONES = {"low": 300.0, "mid": 900.0, "high": 2000.0}


def tone_wav(path: Path, names: list[str], seconds: float, seed: int = 0) -> Path:
    """A WAV of the named tones (150 Hz for a name outside ``TONES``), summed, with a little noise."""
    from crnn_ocr.speech.audio import encode_wav

    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    wave = sum(0.25 * np.sin(2 * np.pi * TONES.get(n, 150.0) * t) for n in names) + 0.02 * rng.standard_normal(len(t))
    path.write_bytes(encode_wav(wave, SR))
    return path


def tone_lmdb(path: Path, labels: list[str]) -> Path:
    """Clips of 0.35-0.6 s whose label is a tone name, or comma-separated tone names."""
    from crnn_ocr.data import write_lmdb

    rng = np.random.default_rng(len(labels))
    samples = []
    for i, label in enumerate(labels):
        tone_wav(path.parent / "clip.wav", label.split(",") if label else [], rng.uniform(0.35, 0.6), seed=i)
        samples.append(((path.parent / "clip.wav").read_bytes(), label))
    write_lmdb(path, samples)
    return path


def train(out: Path, data: Path, classes: Path, kind: str, arch: str, *extra) -> subprocess.CompletedProcess:
    return run_tool("train.py", "--kind", kind, "--data", data, "--val", data, "--alphabet", classes, "--arch", arch,
                    "--sample-rate", SR, "--n-mels", 32, "--max-steps", 2, "--batch-size", 4, "--workers", 0,
                    "--val-every", 2, "--no-progress", "--out", out, *extra)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A 2-step classifier (cnn14: 32 frames at least, with mixup, balanced sampling and whole-clip feature
    normalization) and tagger (convrnn)."""
    tmp = tmp_path_factory.mktemp("classify")
    (tmp / "classes.txt").write_text("low\nmid\nhigh\n")
    names = list(TONES)
    single = tone_lmdb(tmp / "single", [names[i % 3] for i in range(12)])
    tags = tone_lmdb(tmp / "tags", ["low", "mid,high", "high", "low,mid,high", "mid", "low,high"] * 2)
    r = train(tmp / "clf", single, tmp / "classes.txt", "classify", "cnn14", "--mixup", 0.4, "--balanced", "--feature-norm", "clip")
    assert r.returncode == 0, r.stderr
    assert "done: 2 steps" in r.stdout and "(val accuracy " in r.stdout and "step 2: val loss" in r.stdout
    r = train(tmp / "tag", tags, tmp / "classes.txt", "tag", "convrnn", "--schedule", "constant")  # a resume may go on
    assert r.returncode == 0, r.stderr
    assert "(val mAP " in r.stdout and ", mAP " in r.stdout and "d-prime" in r.stdout
    tone_wav(tmp / "a.wav", ["mid"], 0.5)
    tone_wav(tmp / "b.wav", ["low", "high"], 0.7)
    return tmp


def test_train_writes_checkpoints_with_kind_classes_and_thresholds(runs):
    import torch

    clf, tag = runs / "clf", runs / "tag"
    assert {"last.pt", "best.pt", "log.csv", "curves.png", "classes.txt", "confusion.csv"} <= {p.name for p in clf.iterdir()}
    assert (clf / "classes.txt").read_text() == "low\nmid\nhigh\n"
    assert (clf / "log.csv").read_text().splitlines()[0] == "step,epoch,lr,loss,train_acc,images_per_s,val_loss,val_acc"
    assert (tag / "log.csv").read_text().splitlines()[0].endswith("val_loss,val_map,val_auc,val_dprime")
    confusion = (clf / "confusion.csv").read_text().splitlines()
    assert confusion[0] == "true\\predicted,low,mid,high" and sum(int(c) for row in confusion[1:] for c in row.split(",")[1:]) == 12
    state = torch.load(clf / "best.pt", weights_only=True)
    assert state["kind"] == "classify" and state["alphabet"] == {"classes": ["low", "mid", "high"], "multilabel": False}
    assert state["model_config"]["arch"] == "cnn14" and state["train_config"]["mixup"] == 0.4
    assert state["frontend"]["normalize"] == "clip"
    state = torch.load(tag / "last.pt", weights_only=True)
    assert state["kind"] == "tag" and len(state["thresholds"]) == 3 and state["alphabet"]["multilabel"]
    assert state["frontend"]["normalize"] == "bin"


def test_resume_keeps_a_taggers_thresholds(runs, tmp_path):
    import shutil

    import torch

    shutil.copytree(runs / "tag", tmp_path / "tag")
    before = torch.load(tmp_path / "tag" / "last.pt", weights_only=True)["thresholds"]
    r = run_tool("train.py", "--kind", "tag", "--data", runs / "tags", "--max-steps", 3, "--batch-size", 4, "--workers", 0,
                 "--no-progress", "--schedule", "constant", "--out", tmp_path / "tag", "--resume")
    assert r.returncode == 0, r.stderr
    state = torch.load(tmp_path / "tag" / "last.pt", weights_only=True)
    assert state["step"] == 3 and state["thresholds"] == before


def test_infer_prints_label_and_probability(runs):
    r = run_tool("infer.py", "--audio", runs / "a.wav", runs / "b.wav", "--checkpoint", runs / "clf" / "best.pt")
    assert r.returncode == 0, r.stderr
    for line, name in zip(r.stdout.splitlines(), ("a.wav", "b.wav"), strict=True):
        path, label, probability = line.split("\t")
        assert Path(path).name == name and label in TONES and 1 / 3 <= float(probability) <= 1
    r = run_tool("infer.py", "--audio", runs / "a.wav", "--checkpoint", runs / "clf" / "best.pt", "--json", "--top-k", 2)
    row = json.loads(r.stdout)
    assert list(row) == ["path", "label", "probability", "probabilities", "top"]
    assert list(row["probabilities"]) == list(TONES) and sum(row["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    assert row["top"][0] == [row["label"], row["probability"]] and len(row["top"]) == 2
    r = run_tool("infer.py", "--audio", runs / "b.wav", "--checkpoint", runs / "clf" / "best.pt", "--top-k", 3)
    fields = r.stdout.strip().split("\t")
    assert len(fields) == 7 and sorted(fields[1::2]) == sorted(TONES)



def test_infer_adapt_classifies_with_the_adapted_model(runs):
    from crnn_ocr.adapt import batchnorm_layers
    from crnn_ocr.classify import load_classifier

    clips = [runs / "a.wav", runs / "b.wav"]
    r = run_tool("infer.py", "--audio", *clips, "--checkpoint", runs / "clf" / "best.pt", "--adapt", "--json")
    assert r.returncode == 0, r.stderr
    clf = load_classifier(runs / "clf" / "best.pt", backend="torch", device="cpu")
    plain = [clf.classify(str(c)).probabilities for c in clips]
    layers = len(batchnorm_layers(clf.backend.model))
    assert clf.adapt([str(c) for c in clips]) == layers > 0
    assert f"infer.py: adapted {layers} BatchNorm layers to 2 inputs" in r.stderr
    for line, clip, before in zip(r.stdout.splitlines(), clips, plain, strict=True):
        row, expected = json.loads(line), clf.classify(str(clip)).probabilities
        assert list(row["probabilities"].values()) == pytest.approx(list(expected.values()), abs=1e-5)
        assert list(expected.values()) != pytest.approx(list(before.values()), abs=1e-5)

def test_self_training_a_classifier_and_a_tagger_on_their_own_readings(runs, tmp_path):
    import torch

    from crnn_ocr.adapt import batchnorm_layers
    from crnn_ocr.classify import load_classifier
    from crnn_ocr.data import iter_lmdb_samples
    from crnn_ocr.self_training import self_train

    names = [["low"], ["mid"], ["high"], ["mid", "high"]]
    sources = [tone_wav(tmp_path / "c.wav", n, 0.45 + 0.05 * i, seed=10 + i).read_bytes() for i, n in enumerate(names)]
    bad = b"RIFF, not a WAV"  # skipped and counted
    for run, expect_kind in (("clf", "classify"), ("tag", "tag")):
        path = runs / run / "best.pt"
        before = load_classifier(path, backend="torch", device="cpu")
        layers = len(batchnorm_layers(before.backend.model))  # the tagger (convrnn) has none: self-training needs no BatchNorm
        if layers:
            before.adapt(sources)
        results = before.classify_batch(sources)
        expected = [r.label if expect_kind == "classify" else ",".join(r.labels) or None for r in results]
        skipped: list[int] = []
        trained, report = self_train(path, [*sources[:2], bad, *sources[2:]], tmp_path / run, steps=2, batch_size=2,
                                     keep_data=[str(runs / "single" if run == "clf" else runs / "tags")], keep_shares=[0.5],
                                     on_skip=lambda i, e, seen=skipped: seen.append(i))
        kept = [e for e in expected if e is not None]
        assert (report.inputs, report.unreadable, report.kept, report.left_out, report.steps) == (5, 1, len(kept), 4 - len(kept), 2)
        assert skipped == [2] and list(report.labels) == [*expected[:2], None, *expected[2:]]
        assert report.layers == layers and trained.kind == expect_kind
        assert [label for _, _, label in iter_lmdb_samples(tmp_path / run / "pseudo_labels")] == kept
        state = torch.load(report.checkpoint, weights_only=False)
        stored = torch.load(path, weights_only=False)["train_config"]
        assert state["step"] == 2 and state["train_config"]["data_ratios"] == [0.5, 0.5]
        assert state["train_config"]["mixup"] == stored["mixup"]  # the model's own training recipe
        again = load_classifier(report.checkpoint, backend="torch", device="cpu")
        if layers:
            again.adapt(sources)
        prepared = [again.prepare(s) for s in sources]
        assert np.allclose(trained.probabilities(prepared), again.probabilities(prepared), atol=1e-6)
        assert not np.allclose(trained.probabilities(prepared), before.probabilities(prepared), atol=1e-5)
    with pytest.raises(ValueError, match="best.pt: a lexicon constrains a CTC recognizer's readings; a classify model reads its classes"):
        self_train(runs / "clf" / "best.pt", sources, tmp_path / "w", steps=1, lexicon=["low"])
    with pytest.raises(ValueError, match="none of the 4 inputs read as anything with confidence >= 1.5"):
        self_train(runs / "clf" / "best.pt", sources, tmp_path / "w", steps=1, min_confidence=1.5)


def test_adapt_tool_self_trains_a_classifier(runs, tmp_path):
    import torch

    from crnn_ocr.adapt import batchnorm_layers
    from crnn_ocr.classify import load_classifier

    clf = runs / "clf" / "best.pt"
    clips = [tone_wav(tmp_path / f"{n}.wav", [n], 0.5, seed=i) for i, n in enumerate(TONES)]
    out, work = tmp_path / "self.pt", tmp_path / "work"
    r = run_tool("adapt.py", "--checkpoint", clf, "--audio", *clips, "--out", out, "--self-train", 2, "--batch-size", 2,
                 "--keep-data", runs / "single", "--work", work)
    assert r.returncode == 0, r.stderr
    layers = len(batchnorm_layers(load_classifier(clf, backend="torch", device="cpu").backend.model))
    assert r.stdout.splitlines()[-1] == (f"wrote {out}: {layers} BatchNorm layers adapted to 3 inputs; self-trained 2 steps "
                                         "on 3 of its readings (0 below --min-confidence or empty, left out), adapted again")
    saved = torch.load(out, weights_only=True)
    assert saved["kind"] == "classify" and saved["adapted_on"] == "3 audio inputs, self-trained 2 steps on 3 of its readings"
    trained = load_classifier(work / "run" / "last.pt", backend="torch", device="cpu")
    trained.adapt([str(c) for c in clips])
    prepared = [trained.prepare(str(c)) for c in clips]
    assert np.allclose(load_classifier(out, backend="torch", device="cpu").probabilities(prepared), trained.probabilities(prepared), atol=1e-6)
    (tmp_path / "words.txt").write_text("low\n")
    _one_line(run_tool("adapt.py", "--checkpoint", clf, "--audio", *clips, "--out", tmp_path / "x.pt", "--self-train", 1,
                       "--lexicon", tmp_path / "words.txt"),
              f"--lexicon: {clf} is a classify model, which reads its classes: a lexicon is for CTC recognizers")
    assert not (tmp_path / "x.pt").exists()


def test_infer_prints_a_taggers_labels_over_their_thresholds(runs):
    import torch

    thresholds = torch.load(runs / "tag" / "best.pt", weights_only=True)["thresholds"]
    r = run_tool("infer.py", "--audio", runs / "b.wav", "--checkpoint", runs / "tag" / "best.pt", "--json")
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)
    assert list(row) == ["path", "label", "probability", "labels", "probabilities"]
    probs = row["probabilities"]
    assert row["labels"] == sorted((n for n, t in zip(TONES, thresholds) if probs[n] >= t), key=lambda n: -probs[n])
    line = run_tool("infer.py", "--audio", runs / "b.wav", "--checkpoint", runs / "tag" / "best.pt").stdout.strip().split("\t")
    assert line[1] == ",".join(row["labels"]) and len(line) == 3


def _one_line(r: subprocess.CompletedProcess, *needles: str) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def test_bad_inputs_are_one_line_exit_2_and_lose_nothing(runs, tmp_path):
    import cv2

    from conftest import render_word

    clf = runs / "clf" / "best.pt"
    cv2.imwrite(str(tmp_path / "word.png"), render_word("cat"))
    _one_line(run_tool("infer.py", "--image", tmp_path / "word.png", "--checkpoint", clf),
              "is a classify model of audio, it cannot read images (give --audio files)")
    short = tone_wav(tmp_path / "short.wav", ["mid"], 0.2)  # 21 frames; cnn14 pools 5 times: at least 32
    r = run_tool("infer.py", "--audio", short, "--checkpoint", clf)
    _one_line(r, "short.wav: 0.21 s (21 frames) is shorter than the model's minimum of 0.32 s (32 frames)")
    r = run_tool("infer.py", "--audio", runs / "a.wav", short, "--checkpoint", clf)  # the other file is still read
    assert r.returncode == 2 and [Path(line.split("\t")[0]).name for line in r.stdout.splitlines()] == ["a.wav"]
    _one_line(run_tool("infer.py", "--audio", short, "--checkpoint", clf, "--lexicon", runs / "classes.txt"),
              "--lexicon: apply to CTC models")
    _one_line(run_tool("infer.py", "--audio", short, "--checkpoint", clf, "--no-lexicon"), "--no-lexicon: apply to CTC models")
    # training data: an unknown class or an empty tag list stops the run before it writes anything
    unknown = tone_lmdb(tmp_path / "unknown", ["low", "loud", "mid"])
    r = train(tmp_path / "run1", unknown, runs / "classes.txt", "classify", "cnn10")
    _one_line(r, "unknown: sample 2: label 'loud' names no class (known: low, mid, high)")
    empty = tone_lmdb(tmp_path / "empty", ["low,mid", ""])
    r = train(tmp_path / "run2", empty, runs / "classes.txt", "tag", "convrnn")
    _one_line(r, "empty: sample 2: empty tag list ''")
    assert not (tmp_path / "run1").exists() and not (tmp_path / "run2").exists()
    r = run_tool("train.py", "--kind", "tag", "--data", runs / "tags", "--max-steps", 1, "--out", tmp_path / "run3")
    _one_line(r, "--kind tag: give --alphabet, the class list file")


def test_the_ctc_readers_refuse_a_classifier_and_the_reverse(runs, trained_ctc):
    from crnn_ocr.classify import load_classifier
    from crnn_ocr.recognizer import load_recognizer
    from crnn_ocr.tasks import WrongTask

    with pytest.raises(WrongTask, match="is a classify model .*crnn_ocr.classify.load_classifier"):
        load_recognizer(runs / "clf" / "best.pt")
    with pytest.raises(ValueError, match="is a text model \\(a CTC recognizer, not a classifier\\)"):
        load_classifier(trained_ctc)
    _one_line(run_tool("infer.py", "--image", runs / "a.wav", "--checkpoint", trained_ctc, "--top-k", 2), "--top-k", "applies to classifiers")


@pytest.fixture(scope="module")
def trained_ctc(tmp_path_factory):
    from crnn_ocr.alphabet import Alphabet
    from crnn_ocr.checkpoint import save_checkpoint
    from crnn_ocr.model import ModelConfig, build_model

    config = ModelConfig(num_classes=11, arch="crnn_compact")
    path = tmp_path_factory.mktemp("ctc") / "ctc.pt"
    save_checkpoint(path, {"kind": "text", "model_config": config.to_dict(), "alphabet": Alphabet.preset("digits").to_dict(),
                           "frontend": {"kind": "image", "height": 32, "channels": 1, "max_width": 400}, "model": build_model(config).state_dict()})
    return path


@pytest.mark.parametrize("run", ["clf", "tag"])
def test_onnx_export_reads_back_the_same_logits(runs, tmp_path, run):
    pytest.importorskip("onnxruntime")
    from crnn_ocr.classify import load_classifier

    r = run_tool("export.py", "--checkpoint", runs / run / "best.pt", "--out", tmp_path / "m.onnx")
    assert r.returncode == 0, r.stderr
    torch_clf, onnx_clf = load_classifier(runs / run / "best.pt"), load_classifier(tmp_path / "m.onnx")
    assert (onnx_clf.kind, onnx_clf.classes, onnx_clf.min_width) == (torch_clf.kind, torch_clf.classes, torch_clf.min_width)
    assert np.allclose(onnx_clf.thresholds, torch_clf.thresholds)
    prepared = [torch_clf.prepare(runs / name) for name in ("a.wav", "b.wav")]  # a batch of two widths
    batch = torch_clf.frontend.to_batch(prepared)
    widths = np.array([p.shape[1] for p in prepared])
    assert np.abs(onnx_clf.backend.logits(batch, widths) - torch_clf.backend.logits(batch, widths)).max() < 1e-4
    assert onnx_clf.classify(runs / "b.wav").labels == torch_clf.classify(runs / "b.wav").labels
    _one_line(run_tool("export.py", "--checkpoint", runs / run / "best.pt", "--int8"), "exports to fp32 ONNX")


def test_an_onnx_classifier_reads_without_torch(runs, tmp_path):
    pytest.importorskip("onnxruntime")
    assert run_tool("export.py", "--checkpoint", runs / "clf" / "best.pt", "--out", tmp_path / "m.onnx").returncode == 0
    code = ("import sys; from crnn_ocr.classify import load_classifier; "
            f"c = load_classifier({str(tmp_path / 'm.onnx')!r}); r = c.classify({str(runs / 'a.wav')!r}); "
            "print(r.label, c.frontend.normalize, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    label, normalize, torch_loaded = out.stdout.split()
    assert label in TONES and normalize == "clip" and torch_loaded == "False"  # the export carries the front-end's normalization


def test_bench_puts_the_model_beside_the_mfcc_baseline(runs):
    import importlib.util

    from conftest import load_script

    bench = load_script("bench_classify", ROOT / "bench" / "bench_classify.py")
    d = bench.dct_matrix(13, 40)
    assert np.allclose(d @ d.T, np.eye(13))  # orthonormal rows
    assert bench.mfcc_stats((runs / "a.wav").read_bytes(), SR).shape == (52,)
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_classify.py"), "--train", runs / "single", "--test", runs / "single",
                        "--classes", runs / "classes.txt", "--checkpoint", runs / "clf" / "best.pt"],
                       capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = [line.split(" | ") for line in r.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    assert [row[0] for row in rows] == ["| method", "| MFCC stats + logistic regression", "| best.pt"]
    assert rows[0][1:3] == ["accuracy", "ms/clip"]
    assert 0 <= float(rows[2][1]) <= 1 and float(rows[2][2]) > 0  # accuracy, ms per clip
    if importlib.util.find_spec("sklearn") is None:  # a bench-only dependency: the baseline says so
        assert rows[1][1:] == ["-", "-", 'skipped: needs scikit-learn (pip install -e ".[bench]") |']
    else:
        assert 0 <= float(rows[1][1]) <= 1 and float(rows[1][2]) > 0


def test_bench_counts_a_clip_not_read_as_wrong_and_reads_words_with_pocketsphinx(tmp_path, monkeypatch):
    import importlib.util
    import shutil

    from conftest import load_script

    bench = load_script("bench_classify", ROOT / "bench" / "bench_classify.py")
    probabilities = np.array([[0.0, 0.0, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1]])
    np.testing.assert_array_equal(bench.predictions(probabilities), [-1, 1, 0])
    assert bench.scores(probabilities, np.array([0, 1, 0]), multilabel=False) == {"accuracy": 2 / 3}  # the unread class-0 clip is wrong
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pocketsphinx" else real_find_spec(name, *a))
    assert bench.pocketsphinx_reader(("zero", "one")) == 'skipped: needs pocketsphinx (pip install -e ".[bench]")'
    monkeypatch.undo()
    pytest.importorskip("pocketsphinx")  # the bench extra
    assert bench.pocketsphinx_reader(("seven", "qxzv")) == "skipped: 'qxzv' is not in PocketSphinx's dictionary"
    if shutil.which("flite") is None:
        pytest.skip("flite is not installed")
    words = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    read = bench.pocketsphinx_reader(words)
    for word in ("seven", "one", "nine", "four"):  # flite's default voice (it reads espeak-ng's robotic "seven" as "one")
        subprocess.run(["flite", "-t", word, "-o", str(tmp_path / "w.wav")], check=True)
        assert read((tmp_path / "w.wav").read_bytes()) == words.index(word)
