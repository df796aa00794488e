"""The classification data generator (crnn_ocr.synth.clips, datasets/audio_clips.py) on fake
recordings made in tmp_path: FSDD-style digits and speakers, yes/no sequences cut at their
pauses, and the tagging mixtures of digits from different voices."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT

pytest.importorskip("soundfile")
pytest.importorskip("scipy")

from crnn_ocr.synth.clips import ClipsConfig, generate, mixture, split_words  # noqa: E402
from crnn_ocr.synth.digits import DIGIT_WORDS  # noqa: E402

SR = 8000


def burst(freq: float, seconds: float) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (0.4 * np.sin(2 * np.pi * freq * t) * np.hanning(len(t))).astype(np.float32)


def write_wav(path, wave):
    import soundfile as sf

    sf.write(str(path), wave, SR)


@pytest.fixture
def fsdd(tmp_path):
    """Three speakers x three digits x two takes, a labels.tsv with FSDD's columns (take 0: test)."""
    folder = tmp_path / "fsdd"
    (folder / "recordings").mkdir(parents=True)
    rows = ["path\tdigit\tword\tspeaker\tindex\tsplit"]
    for s, speaker in enumerate(("ann", "bob", "cy")):
        for digit in (1, 2, 7):
            for take in range(2):
                name = f"recordings/{digit}_{speaker}_{take}.wav"
                write_wav(folder / name, np.r_[np.zeros(400, np.float32), burst(200 + 100 * digit + 20 * s, 0.3), np.zeros(400, np.float32)])
                rows.append(f"{name}\t{digit}\t{DIGIT_WORDS[digit]}\t{speaker}\t{take}\t{'test' if take == 0 else 'train'}")
    (folder / "labels.tsv").write_text("\n".join(rows) + "\n")
    return folder


def lmdb_labels(path) -> list[str]:
    from crnn_ocr.data import iter_lmdb_samples

    return [label for _, _, label in iter_lmdb_samples(path)]


def test_fsdd_digits_and_speakers(fsdd, tmp_path):
    n, skipped = generate(ClipsConfig(source="fsdd", out=str(tmp_path / "digits"), recordings=str(fsdd), speakers=["cy"]))
    assert (n, skipped) == (6, 0)
    assert sorted(lmdb_labels(tmp_path / "digits")) == ["one", "one", "seven", "seven", "two", "two"]
    assert (tmp_path / "digits" / "classes.txt").read_text() == "one\ntwo\nseven\n"  # digit order
    n, _ = generate(ClipsConfig(source="fsdd", out=str(tmp_path / "spk"), recordings=str(fsdd), label="speaker", split="test"))
    assert n == 9 and sorted(set(lmdb_labels(tmp_path / "spk"))) == ["ann", "bob", "cy"]
    assert (tmp_path / "spk" / "classes.txt").read_text() == "ann\nbob\ncy\n"


def test_split_words_finds_the_words_between_pauses():
    gap = np.zeros(int(0.25 * SR), np.float32)
    click = np.zeros(int(0.02 * SR), np.float32) + 0.3  # shorter than a word
    wave = np.r_[gap, burst(400, 0.3), gap, burst(700, 0.4), gap, click, gap, burst(500, 0.35), gap]
    spans = split_words(wave, SR, 3)
    assert spans is not None and len(spans) == 3
    starts = [0.25, 0.8, 1.77 + 0.02]  # each burst's start in seconds
    for (a, b), start, length in zip(spans, starts, (0.3, 0.4, 0.35)):
        assert a / SR < start + 0.1 and b / SR > start + length - 0.1 and b - a < (length + 0.2) * SR
    assert split_words(wave, SR, 4) is None  # three words cannot be cut into four


def test_yesno_words_are_labelled_from_the_transcript(tmp_path):
    folder = tmp_path / "yesno"
    folder.mkdir()
    gap = np.zeros(int(0.3 * SR), np.float32)
    lines = []
    for k, words in enumerate((["yes", "no", "no"], ["no", "yes", "yes"])):
        wave = np.concatenate([gap] + [np.r_[burst(300 if w == "yes" else 600, 0.3), gap] for w in words])
        write_wav(folder / f"{k}.wav", wave)
        lines.append(f"{k}.wav\t{' '.join(words)}")
    write_wav(folder / "2.wav", burst(300, 1.0))  # one long sound: not three words
    lines.append("2.wav\tyes yes yes")
    (folder / "labels.tsv").write_text("\n".join(lines) + "\n")
    n, skipped = generate(ClipsConfig(source="yesno", out=str(tmp_path / "out"), recordings=str(folder), files=(0, 3)))
    assert (n, skipped) == (6, 1)
    assert lmdb_labels(tmp_path / "out") == ["yes", "no", "no", "no", "yes", "yes"]
    assert (tmp_path / "out" / "classes.txt").read_text() == "no\nyes\n"


def test_mixtures_tag_the_digits_of_different_voices(fsdd, tmp_path):
    cfg = ClipsConfig(source="mix", out=str(tmp_path / "mix"), recordings=str(fsdd), count=40, min_digits=1, max_digits=3,
                      seconds=1.0, snr=(5.0, 5.0), seed=3)
    n, _ = generate(cfg)
    labels = lmdb_labels(tmp_path / "mix")
    assert n == 40 and {len(label.split(",")) for label in labels} == {1, 2, 3}
    for label in labels:
        tags = label.split(",")
        assert tags == [w for w in DIGIT_WORDS if w in tags] and set(tags) <= {"one", "two", "seven"}  # class order, no repeats
    assert (tmp_path / "mix" / "classes.txt").read_text().split() == list(DIGIT_WORDS)
    one = {"v": {"one": [burst(300, 0.3)]}}
    wave, tags = mixture(0, one, ClipsConfig(source="mix", out="", min_digits=1, max_digits=1, seconds=1.0, snr=(10.0, 10.0)))
    assert tags == "one" and wave.shape == (SR,) and np.abs(wave).max() == pytest.approx(0.9, abs=1e-6)
    assert mixture(5, one, cfg)[1] == mixture(5, one, cfg)[1]  # clip i is a function of the seed


def test_cli_and_its_errors(fsdd, tmp_path):
    script = ROOT / "datasets" / "audio_clips.py"
    r = subprocess.run([sys.executable, str(script), "--source", "fsdd", "--recordings", fsdd, "--speakers", "ann", "--out", tmp_path / "a"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == f"wrote 6 clips to {tmp_path / 'a'}", r.stderr
    r = subprocess.run([sys.executable, str(script), "--source", "mix", "--recordings", fsdd, "--speakers", "ann", "--out", tmp_path / "b"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().endswith("1 voice for up to 3 digits from different voices; give --recordings and/or --espeak-count")
    r = subprocess.run([sys.executable, str(script), "--source", "yesno", "--out", tmp_path / "c"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--source yesno needs --recordings" in r.stderr


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_espeak_digit_words(tmp_path):
    n, _ = generate(ClipsConfig(source="espeak", out=str(tmp_path / "e"), count=4, seed=1))
    assert n == 4 and set(lmdb_labels(tmp_path / "e")) <= set(DIGIT_WORDS)


@pytest.mark.skipif(shutil.which("flite") is None and shutil.which("espeak-ng") is None, reason="no TTS engine installed")
def test_tts_digit_words_cycle_the_digits_over_engines(tmp_path):
    engines = [e for e, prog in (("espeak", "espeak-ng"), ("flite", "flite")) if shutil.which(prog)]
    n, skipped = generate(ClipsConfig(source="tts", out=str(tmp_path / "t"), count=12, seed=2, engines=engines))
    assert (n, skipped) == (12, 0)
    assert lmdb_labels(tmp_path / "t") == list(DIGIT_WORDS) + ["zero", "one"]
    assert (tmp_path / "t" / "classes.txt").read_text().split() == list(DIGIT_WORDS)
