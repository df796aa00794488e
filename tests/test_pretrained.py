"""The shipped models: present, small, self-describing, and reading clean words; slim checkpoints."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import ROOT, render_word, require_engraving
from crnn_ocr.alphabet import Alphabet
from crnn_ocr.checkpoint import INFERENCE_KEYS, load_checkpoint, save_checkpoint
from crnn_ocr.decoding import CTCDecoder
from crnn_ocr.deploy.export import ExportConfig, export
from crnn_ocr.model import ModelConfig, build_model
from crnn_ocr.pretrained import MODELS, checkpoint_or_default, default_model, pretrained_path
from crnn_ocr.recognizer import Recognizer, load_pretrained, load_recognizer, resolve_model

ENV = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "OMP_NUM_THREADS": "1"}
CLEAN_WORDS = ["hello", "world", "OCR", "Python", "2026", "street", "COFFEE", "recognition"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_shipped_model_is_present_small_and_inference_only(name):
    path = pretrained_path(name)
    assert path.stat().st_size <= 25 * 1024 * 1024
    state = load_checkpoint(path)
    assert set(state) <= {"format", *INFERENCE_KEYS} and "optimizer" not in state
    assert state["kind"] == MODELS[name].kind
    if MODELS[name].kind in ("classify", "tag"):
        from crnn_ocr.classify.config import ClassifierConfig
        from crnn_ocr.classify.models import build_classifier

        model = build_classifier(ClassifierConfig.from_dict(state["model_config"]))
    else:
        model = build_model(ModelConfig.from_dict(state["model_config"]))
    model.load_state_dict(state["model"])  # weights match the stored config exactly


def test_english_model_reads_clean_words(tmp_path):
    rec = load_pretrained("english")
    assert rec.alphabet == Alphabet.preset("printable")  # both cases, digits, punctuation, space
    results = rec.read_batch([render_word(w) for w in CLEAN_WORDS])
    assert [r.text for r in results] == CLEAN_WORDS
    # confidence = P(whole reading); in Pillow's default font (not a training font) the shipped model
    # gives 0.51 ("Python") to 0.99 ("OCR", "2026"), mean 0.79
    assert all(r.confidence > 0.3 for r in results) and np.mean([r.confidence for r in results]) > 0.7
    lexicon = Recognizer(rec.backend, rec.frontend, CTCDecoder(rec.alphabet, lexicon=["hallo", "hello", "help"]))
    assert lexicon.read(render_word("hello")).text == "hello"


def test_english_model_reads_nothing_in_blank_crops():
    # a detector's false positive is a crop with no text: black, gray or white, narrow to wide;
    # a candidate model that read letters into these (run 13, BENCHMARKS) must not ship
    rec = load_pretrained("english")
    blanks = [np.full((h, w), v, np.uint8) for h in (32, 40) for w in [*range(4, 120, 8), 200, 300] for v in (0, 128, 255)]
    read = [(b.shape, int(b[0, 0]), r.text) for b, r in zip(blanks, rec.read_batch(blanks)) if r.text]
    assert read == []


def test_infer_defaults_to_the_shipped_model_as_onnx_without_torch(tmp_path):
    cv2.imwrite(str(tmp_path / "w.png"), render_word("Python"))
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['infer.py', '--image', {str(tmp_path / 'w.png')!r}]\n"
        "try:\n"
        f"    runpy.run_path({str(ROOT / 'tools' / 'infer.py')!r}, run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print('LOADED', sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'onnxruntime'}))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode == 0, r.stderr
    row, loaded = r.stdout.strip().splitlines()
    path, text, confidence = row.split("\t")
    assert (path, text, loaded) == (str(tmp_path / "w.png"), "Python", "LOADED ['onnxruntime']")
    assert 0.4 < float(confidence) <= 1
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "infer.py"), "--image", str(tmp_path / "w.png"), "--backend", "torch"],
                       capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\t")[1] == "Python"
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "infer.py"), "--image", str(tmp_path / "w.png"), "--model", "english",
                        "--checkpoint", "mine.pt"], capture_output=True, text=True, env=ENV, timeout=120)
    assert (r.returncode, r.stderr) == (2, "infer.py: error: --model and --checkpoint: give one of them\n")
    assert checkpoint_or_default(None, "text") == str(pretrained_path(default_model("text")))
    assert checkpoint_or_default("mine.pt", "text") == "mine.pt"
    # the one backend decision: a shipped name reads its ONNX export unless a torch-only option is asked for
    assert resolve_model("english") == (str(MODELS["english"].onnx_path), "onnx")
    assert resolve_model("english", torch_options=True) == resolve_model("english", "torch") == (str(pretrained_path("english")), "torch")
    assert resolve_model("spoken_digits") == (str(pretrained_path("spoken_digits")), "torch")  # no export ships
    assert resolve_model("mine.pt") == ("mine.pt", "torch") and resolve_model("mine.ONNX") == ("mine.ONNX", "onnx")
    with pytest.raises(ValueError, match="no ONNX export"):
        resolve_model("score", "onnx")
    with pytest.raises(ValueError, match="no pretrained"):
        pretrained_path("klingon")


@pytest.mark.parametrize("name", sorted(n for n in MODELS if MODELS[n].onnx_filename))
def test_shipped_onnx_export_matches_the_checkpoint(name):
    torch_rec = load_pretrained(name)
    assert torch_rec.backend.name == "torch"
    onnx_rec = load_recognizer(MODELS[name].onnx_path, backend="onnx", threads=1)
    images = [torch_rec.prepare(render_word(w)) for w in CLEAN_WORDS]
    (a, la), (b, lb) = torch_rec.log_probs(images), onnx_rec.log_probs(images)
    np.testing.assert_array_equal(la, lb)
    np.testing.assert_allclose(a, b, atol=1e-4)
    assert [r.text for r in torch_rec.read_prepared(images)] == [r.text for r in onnx_rec.read_prepared(images)]


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs the espeak-ng program (.ci/run installs it)")
def test_speech_model_reads_spoken_digits(tmp_path):
    for text in ("seven two nine", "one zero four four"):
        wav = tmp_path / f"{text.replace(' ', '_')}.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), text], check=True, timeout=60)
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "infer.py"), "--audio", str(tmp_path)],
                       capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    assert [(Path(row[0]).stem, row[1]) for row in rows] == [("one_zero_four_four", "one zero four four"),
                                                               ("seven_two_nine", "seven two nine")]
    assert [len(row[3].split()) for row in rows] == [4, 3]  # word@start-end times
    rec = load_pretrained("spoken_digits", lexicon=["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    assert rec.read(str(tmp_path / "seven_two_nine.wav")).text == "seven two nine"


def test_a_closed_vocabulary_model_reads_with_its_words_by_name_only():
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "yes", "no"]
    assert list(MODELS["spoken_digits"].vocabulary) == words
    by_name = load_pretrained("spoken_digits").decoder
    assert by_name.lexicon.words == words and by_name.lexicon_mode == "trie"  # any sequence of the twelve
    assert load_pretrained("spoken_digits", lexicon=None).decoder.lexicon is None  # asked for none: greedy letters
    assert load_pretrained("spoken_digits", lexicon=["yes", "no"]).decoder.lexicon.words == ["yes", "no"]
    assert load_recognizer(str(MODELS["spoken_digits"].path)).decoder.lexicon is None  # a file is a model, no default
    assert load_pretrained("english").decoder.lexicon is None  # open vocabulary


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs the espeak-ng program (.ci/run installs it)")
def test_spoken_digits_reads_only_its_words_unless_told_not_to(tmp_path):
    wav = tmp_path / "hello.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(wav), "hello seven world"], check=True, timeout=60)
    infer = lambda *extra: subprocess.run([sys.executable, str(ROOT / "tools" / "infer.py"), "--audio", str(wav), *extra],  # noqa: E731
                                          capture_output=True, text=True, env=ENV, timeout=120)
    default, greedy = infer(), infer("--no-lexicon")
    assert default.returncode == greedy.returncode == 0, default.stderr + greedy.stderr
    (_, text, confidence, _), (_, raw, _, _) = default.stdout.split("\t"), greedy.stdout.split("\t")
    vocabulary = set(MODELS["spoken_digits"].vocabulary)
    assert text.split()[1] == raw.split()[1] == "seven"
    assert set(text.split()) <= vocabulary and not set(raw.split()) <= vocabulary  # greedy letters spell non-words
    assert float(confidence) < 0.01  # the words do not fit what was said: the confidence says so
    both = infer("--no-lexicon", "--lexicon", str(wav))
    assert both.returncode == 2 and both.stderr.strip() == "infer.py: error: --lexicon and --no-lexicon: give one of them"


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs the espeak-ng program (.ci/run installs it)")
def test_digit_classifier_and_tagger_hear_spoken_digits(tmp_path):
    from crnn_ocr.classify import load_classifier

    for word in ("two", "seven", "nine"):
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(tmp_path / f"{word}.wav"), word], check=True, timeout=60)
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "infer.py"), "--audio", str(tmp_path), "--model", "digit_classifier"],
                       capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    assert [(Path(row[0]).stem, row[1]) for row in rows] == [("nine", "nine"), ("seven", "seven"), ("two", "two")]
    assert all(float(row[2]) > 0.5 for row in rows)
    tagger = load_classifier("digit_tagger")
    waves = [sf.read(tmp_path / f"{w}.wav")[0] for w in ("two", "seven")]
    rate = sf.info(tmp_path / "two.wav").samplerate
    clip = np.concatenate([waves[0], np.zeros(rate // 4), waves[1]]).astype(np.float32)
    assert set(tagger.classify(clip, sample_rate=rate).labels) == {"two", "seven"}  # the digits spoken, no other


def test_slim_checkpoint_export_drops_training_state_and_reads_the_same(tmp_path):
    torch.manual_seed(0)
    alphabet = Alphabet.preset("digits")
    config = ModelConfig(num_classes=alphabet.num_classes, arch="crnn_compact", hidden_size=32)
    model = build_model(config)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, 1, 32, 64)).sum().backward()
    optimizer.step()
    full = tmp_path / "last.pt"
    save_checkpoint(full, {"kind": "text", "model_config": config.to_dict(), "alphabet": alphabet.to_dict(),
                           "preprocess": {"height": 32, "channels": 1, "max_width": 400}, "model": model.state_dict(),
                           "optimizer": optimizer.state_dict(), "step": 7, "rng": {"seed": 1}})
    out = export(ExportConfig(checkpoint=str(full), format="pt"))
    assert out == tmp_path / "last.infer.pt"
    state = load_checkpoint(out)
    assert sorted(state) == ["alphabet", "format", "kind", "model", "model_config", "preprocess", "step"]
    assert out.stat().st_size < full.stat().st_size / 2  # AdamW keeps two moments per weight
    img = np.full((32, 80), 255, np.uint8)
    cv2.putText(img, "123", (5, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 0, 2)
    a, b = load_recognizer(full).log_probs([img])[0], load_recognizer(out).log_probs([img])[0]
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="would overwrite"):
        export(ExportConfig(checkpoint=str(out), out=str(out), format="pt"))


# C major, four quarters and a whole note (G5, above the staff) as Verovio engraves it in Leipzig
CLEAN_STAFF = ("clef-G2 keySignature-CM timeSignature-4/4 note-C5_quarter note-D5_quarter note-E5_quarter "
               "note-F5_quarter barline note-G5_whole barline")


def test_score_model_reads_an_engraved_staff_into_musicxml(tmp_path):
    """No checkpoint with --musicxml: the shipped score model. It is a CPU-budget model (SER 0.20 on
    held-out staves, BENCHMARKS.md): this clean staff it reads exactly, the whole note above the
    staff included (the 64 px model before it read that note E5); the test pins that so a broken
    or swapped model shows."""
    require_engraving()
    pytest.importorskip("music21")
    import crnn_ocr.synth.music as synth
    engraving = synth.Engraving(font="Leipzig", spacing_linear=0.25, spacing_non_linear=0.6, staff_line_width=0.2,
                                stem_width=0.25, bar_line_width=0.3, margin_top=20, margin_bottom=20, margin_left=50,
                                margin_right=50, beams=True, grace="acc")
    staff = tmp_path / "staff.png"
    cv2.imwrite(str(staff), synth.rasterize(synth.Engraver().svg(CLEAN_STAFF.split(), engraving), 96))
    xml = tmp_path / "read.musicxml"
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "infer.py"), "--image", str(staff), "--musicxml", str(xml)],
                       capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode == 0, r.stderr
    tokens = r.stdout.split("\t")[1].split()
    assert tokens == CLEAN_STAFF.split()
    assert xml.read_text().count("<note") == 5 and xml.read_text().count("<clef>") == 1


KEYED_STAFF = ("clef-G2 keySignature-DM timeSignature-4/4 note-F#4_quarter note-A4_quarter note-D5_quarter note-C#5_quarter "
               "barline note-D5_whole barline")


def test_key_lm_reads_a_staff_in_d_major_and_refuses_other_models(tmp_path):
    """--key-lm: the shipped score model with the key-signature prior reads a D major staff (F# and
    C# from the key, no accidental drawn) exactly; on a text model it is a one-line error."""
    require_engraving()
    import crnn_ocr.synth.music as synth

    engraving = synth.Engraving(font="Leipzig", spacing_linear=0.25, spacing_non_linear=0.6, staff_line_width=0.2,
                                stem_width=0.25, bar_line_width=0.3, margin_top=20, margin_bottom=20, margin_left=50,
                                margin_right=50, beams=True, grace="acc")
    staff = tmp_path / "staff.png"
    cv2.imwrite(str(staff), synth.rasterize(synth.Engraver().svg(KEYED_STAFF.split(), engraving), 96))
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "infer.py"), "--image", str(staff), "--model", "score", "--key-lm"],
                       capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\t")[1].split() == KEYED_STAFF.split()
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "infer.py"), "--image", str(staff), "--model", "english", "--key-lm"],
                       capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "infer.py: error: --key-lm: applies to score models; english is a text model"], r.stderr
