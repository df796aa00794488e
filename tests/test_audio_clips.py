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


KIT_XML = """<?xml version="1.0" encoding="UTF-8"?>
<drumkit_info xmlns="http://www.hydrogen-music.org/drumkit">
 <name>{name}</name>
 <instrumentList>{instruments}</instrumentList>
</drumkit_info>
"""


def write_kit(root, name, instruments):
    """A Hydrogen kit folder: instruments is [(name, [sample file names], layered)]; each file a short burst
    (a name starting "missing" is listed but not written)."""
    folder = root / name
    folder.mkdir(parents=True)
    parts = []
    for i, (inst, files, layered) in enumerate(instruments):
        if layered:
            refs = "".join(f"<layer><filename>{f}</filename><min>0</min><max>1</max></layer>" for f in files)
        else:  # the older format: one filename in the instrument
            refs = "".join(f"<filename>{f}</filename>" for f in files)
        parts.append(f"<instrument><id>{i}</id><name>{inst}</name>{refs}</instrument>")
        for j, f in enumerate(files):
            if not f.startswith("missing"):
                write_wav(folder / f, np.r_[np.zeros(300, np.float32), burst(300 + 200 * i + 50 * j, 0.2 + 0.1 * j)])
    (folder / "drumkit.xml").write_text(KIT_XML.format(name=name, instruments="".join(parts)))
    return folder


def test_drum_classes_from_instrument_names():
    from crnn_ocr.synth.drumkits import DRUM_CLASSES, drum_class

    cases = {"Pearl Kick": "kick", "c3 - bass drum 1": "kick", "BassDrum": "kick", "Snare Rimshot (Pearl 14x3.5)": "snare",
             "Pearl Side Stick": "rim", "Rim Click": "rim", "Closed HH 2": "hihat", "Side OHH": "hihat", "Hi-Hat Pedal": "hihat",
             "Sabian Hat Choke": "hihat", "Ride (Custom, Zagrebin 22\")": "cymbal", "Paiste Bell": "cymbal", "Cowbell": "cowbell",
             "Sangban1 Bell Hit": "hand_drum", "Bongo Lo": "hand_drum", "Floor Tom": "tom", "tomhi2": "tom", "Hand Clap": "clap",
             "Tambourine": "shaker", "Zap 1": None, "17": None, "Whistle": None, "Custom FX": None}
    assert {name: drum_class(name) for name in cases} == cases
    assert DRUM_CLASSES == ("clap", "cowbell", "cymbal", "hand_drum", "hihat", "kick", "rim", "shaker", "snare", "tom")


def test_drum_clips_from_kits_split_by_kit(tmp_path):
    root = tmp_path / "kits"
    write_kit(root, "Acoustic", [("Kick", ["k1.wav", "k2.wav"], True), ("Zap 1", ["z.wav"], True),
                                 ("Snare", ["s.wav"], False), ("Closed HH", ["missing.wav"], True)])
    write_kit(root, "Other", [("Crash", ["c.wav"], True)])
    n, skipped = generate(ClipsConfig(source="drums", out=str(tmp_path / "a"), recordings=str(root), exclude_kits=["Other"],
                                      seconds=0.5, seed=1))
    assert (n, skipped) == (3, 1)  # the missing hi-hat sample is counted, the "Zap" (no class) left out
    assert lmdb_labels(tmp_path / "a") == ["kick", "kick", "snare"]
    assert (tmp_path / "a" / "classes.txt").read_text().split() == ["kick", "snare"]
    rows = [line.split("\t") for line in (tmp_path / "a" / "sources.tsv").read_text().splitlines()]
    assert rows[0] == ["index", "kit", "instrument", "file"]
    assert [(r[0], r[1], r[2], r[3].rsplit("/", 1)[-1]) for r in rows[1:]] == [
        ("1", "Acoustic", "Kick", "k1.wav"), ("2", "Acoustic", "Kick", "k2.wav"), ("3", "Acoustic", "Snare", "s.wav")]
    from crnn_ocr.data import iter_lmdb_samples
    from crnn_ocr.speech.audio import load_audio

    waves = [load_audio(bytes(data), target_rate=SR) for _, data, _ in iter_lmdb_samples(tmp_path / "a")]
    assert [len(w) for w in waves] == [SR // 2] * 3  # every clip 0.5 s: the hit after at most 50 ms of silence
    for w in waves:
        onset = int(np.flatnonzero(np.abs(w) > 1e-3)[0])
        assert onset <= int(0.05 * SR) + 80  # 300 leading zeros trimmed; the burst's window starts quietly
    n, _ = generate(ClipsConfig(source="drums", out=str(tmp_path / "b"), recordings=str(root), kits=["Other"], overwrite=True))
    assert n == 1 and lmdb_labels(tmp_path / "b") == ["cymbal"]


def test_drum_cli_errors(tmp_path):
    root = tmp_path / "kits"
    write_kit(root, "Fx", [("Zap 1", ["z.wav"], True)])
    script = ROOT / "datasets" / "audio_clips.py"
    cmd = [sys.executable, str(script), "--source", "drums", "--recordings", root, "--out", tmp_path / "o"]
    r = subprocess.run(cmd + ["--kits", "Nope"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip().endswith(f"{root}: no drumkit 'Nope'; there are Fx"), r.stderr
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip().endswith(f"{root}: the chosen kits hold no sample of a known drum class")
    r = subprocess.run(cmd[:-4] + ["--recordings", tmp_path, "--out", tmp_path / "o"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "no drumkit folders (*/drumkit.xml)" in r.stderr
    assert not (tmp_path / "o").exists()
