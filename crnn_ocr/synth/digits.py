"""Spoken digit strings built from real single-digit recordings, straight into a speech LMDB.

    python datasets/concat_digits.py --recordings ../shared/data/speech/fsdd --out data/fsdd_train \
        --speakers george jackson nicolas --count 4000 --max-digits 5 --sample-rate 8000
    python datasets/concat_digits.py --recordings ../shared/data/speech/fsdd --out data/fsdd_theo \
        --speakers theo --singles                       # every recording once, as it is

The folder holds one digit per file, listed in ``labels.tsv`` (a header line naming at least
``path`` and ``digit`` or ``word`` columns, and ``speaker`` for speaker splits; the Free Spoken
Digit Dataset's layout) or, without it, named ``<digit>_<speaker>_<index>.wav`` (FSDD's names)
below ``recordings/`` or the folder itself.

Each utterance takes one speaker (train and test sets split by ``--speakers`` never share a
voice), 1..``--max-digits`` digits, a random recording per digit with its leading and trailing
silence trimmed, a random gain (+-3 dB) and pauses of 50-400 ms between digits, plus a faint
noise floor so pauses are not digital silence. Transcripts are the digit words ("seven two").
``--singles`` instead writes every selected recording once, untouched (a real test set of
isolated digits). Output depends only on the seed; ``labels.txt`` beside the LMDB lists the
transcripts.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crnn_ocr.cli import ArgumentParser, UsageError
from crnn_ocr.data import write_lmdb
from crnn_ocr.speech.audio import encode_wav, is_audio_file, load_audio, trim_silence

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_FSDD_NAME = re.compile(r"^(\d)_([A-Za-z0-9-]+)_\d+$")


@dataclass(frozen=True)
class Recording:
    """One single-digit recording."""

    path: Path
    digit: int
    speaker: str
    split: str = ""  # labels.tsv's split column (FSDD: train/test), if any


@dataclass
class ConcatConfig:
    recordings: str
    out: str
    speakers: Sequence[str] | None = None  # None: all
    count: int = 2000
    min_digits: int = 1
    max_digits: int = 5
    pause: tuple[float, float] = (0.05, 0.4)  # seconds between digits
    edge: tuple[float, float] = (0.05, 0.3)  # seconds of lead-in and tail
    sample_rate: int = 8000
    seed: int = 0
    singles: bool = False
    overwrite: bool = False


def read_recordings(folder: str | os.PathLike) -> list[Recording]:
    """The single-digit recordings of ``folder``: from ``labels.tsv`` if present, else FSDD file names."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"{folder}: {'is a file, expected a folder' if folder.exists() else 'no such folder'}")
    table = folder / "labels.tsv"
    out: list[Recording] = []
    if table.is_file():
        with open(table, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        if not rows or "path" not in rows[0] or not ({"digit", "word"} & set(rows[0])):
            raise UsageError(f"{table}: expected a header with 'path' and 'digit' (or 'word') columns")
        for lineno, row in enumerate(rows, 2):
            try:
                digit = int(row["digit"]) if row.get("digit") not in (None, "") else DIGIT_WORDS.index(row["word"].strip().lower())
            except ValueError:
                raise UsageError(f"{table}:{lineno}: not a digit: {row.get('digit') or row.get('word')!r}") from None
            if not 0 <= digit <= 9:
                raise UsageError(f"{table}:{lineno}: not a digit: {digit}")
            out.append(Recording(folder / row["path"], digit, (row.get("speaker") or "").strip(), (row.get("split") or "").strip()))
        return out
    base = folder / "recordings" if (folder / "recordings").is_dir() else folder
    for p in sorted(base.iterdir()):
        m = _FSDD_NAME.match(p.stem)
        if p.is_file() and is_audio_file(p) and m:
            out.append(Recording(p, int(m.group(1)), m.group(2)))
    if not out:
        raise UsageError(f"{folder}: no labels.tsv and no <digit>_<speaker>_<index> audio files")
    return out


class DigitConcatenator:
    """Builds utterances from loaded recordings (all resampled to one rate)."""

    def __init__(self, recordings: Sequence[Recording], cfg: ConcatConfig) -> None:
        self.cfg = cfg
        self.by_speaker: dict[str, dict[int, list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))
        self.skipped: list[str] = []
        for rec in recordings:
            try:
                wave = load_audio(rec.path, target_rate=cfg.sample_rate)
            except ValueError as e:
                self.skipped.append(str(e))
                continue
            self.by_speaker[rec.speaker][rec.digit].append(trim_silence(wave, cfg.sample_rate))
        self.speakers = sorted(self.by_speaker)
        if not self.speakers:
            raise UsageError(f"{cfg.recordings}: none of the selected recordings could be read")

    def make(self, i: int) -> tuple[np.ndarray, str]:
        """Utterance ``i``: float32 (n,) at ``cfg.sample_rate`` and its transcript."""
        cfg, sr = self.cfg, self.cfg.sample_rate
        rng = np.random.default_rng([cfg.seed, i])
        digits_of = self.by_speaker[self.speakers[int(rng.integers(len(self.speakers)))]]
        available = sorted(d for d, waves in digits_of.items() if waves)
        n = int(rng.integers(cfg.min_digits, cfg.max_digits + 1))
        digits = [available[int(k)] for k in rng.integers(0, len(available), n)]
        parts = [np.zeros(int(rng.uniform(*cfg.edge) * sr), np.float32)]
        for k, d in enumerate(digits):
            waves = digits_of[d]
            wave = waves[int(rng.integers(len(waves)))] * np.float32(10 ** (rng.uniform(-3, 3) / 20))
            if k:
                parts.append(np.zeros(int(rng.uniform(*cfg.pause) * sr), np.float32))
            parts.append(wave.astype(np.float32))
        parts.append(np.zeros(int(rng.uniform(*cfg.edge) * sr), np.float32))
        out = np.concatenate(parts)
        peak = float(np.max(np.abs(out))) or 1.0
        out = out * np.float32(min(1.0, 0.95 / peak))
        out = out + rng.standard_normal(len(out)).astype(np.float32) * np.float32(peak * 10 ** (-55 / 20))
        return np.clip(out, -1, 1), " ".join(DIGIT_WORDS[d] for d in digits)


def select(recordings: Sequence[Recording], speakers: Sequence[str] | None, source: str) -> list[Recording]:
    if not speakers:
        return list(recordings)
    known = {r.speaker for r in recordings}
    missing = [s for s in speakers if s not in known]
    if missing:
        raise UsageError(f"{source}: no recordings of speaker(s) {', '.join(missing)} (known: {', '.join(sorted(known))})")
    return [r for r in recordings if r.speaker in set(speakers)]


def generate(cfg: ConcatConfig) -> tuple[int, int]:
    """Write the LMDB (and ``labels.txt``); returns (written, unreadable recordings skipped)."""
    chosen = select(read_recordings(cfg.recordings), cfg.speakers, cfg.recordings)
    labels: list[str] = []
    skipped = 0

    if cfg.singles:
        def samples() -> Iterator[tuple[bytes, str]]:
            nonlocal skipped
            for rec in chosen:
                try:
                    wave = load_audio(rec.path, target_rate=cfg.sample_rate)
                except ValueError:
                    skipped += 1
                    continue
                labels.append(DIGIT_WORDS[rec.digit])
                yield encode_wav(wave, cfg.sample_rate), DIGIT_WORDS[rec.digit]
    else:
        maker = DigitConcatenator(chosen, cfg)
        skipped = len(maker.skipped)

        def samples() -> Iterator[tuple[bytes, str]]:
            for i in range(cfg.count):
                wave, text = maker.make(i)
                labels.append(text)
                yield encode_wav(wave, cfg.sample_rate), text

    n = write_lmdb(cfg.out, samples(), overwrite=cfg.overwrite)
    (Path(cfg.out) / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    return n, skipped


def parse_args(argv: list[str] | None = None) -> ConcatConfig:
    p = ArgumentParser(prog="concat_digits.py", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recordings", required=True, help="folder of single-digit recordings (labels.tsv or FSDD names)")
    p.add_argument("--out", required=True, help="output LMDB folder")
    p.add_argument("--speakers", nargs="+", help="use only these speakers (default: all)")
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--min-digits", type=int, default=1)
    p.add_argument("--max-digits", type=int, default=5)
    p.add_argument("--sample-rate", type=int, default=8000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--singles", action="store_true", help="every selected recording once, not concatenated")
    p.add_argument("--overwrite", action="store_true")
    a = p.parse_args(argv)
    if a.count < 1 or a.min_digits < 1 or a.max_digits < a.min_digits:
        p.error("need --count >= 1 and 1 <= --min-digits <= --max-digits")
    if not 4000 <= a.sample_rate <= 48000:
        p.error(f"--sample-rate must be in 4000..48000 Hz, got {a.sample_rate}")
    return ConcatConfig(recordings=a.recordings, out=a.out, speakers=a.speakers, count=a.count, min_digits=a.min_digits,
                        max_digits=a.max_digits, sample_rate=a.sample_rate, seed=a.seed, singles=a.singles, overwrite=a.overwrite)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    n, skipped = generate(cfg)
    tail = f" (skipped {skipped} unreadable recording{'s' if skipped != 1 else ''})" if skipped else ""
    print(f"wrote {n} utterances to {cfg.out}{tail}")
    return 0 if n else 1

