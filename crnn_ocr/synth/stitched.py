"""New words in real pixels: real word crops cut between their letters and put together again.

    python datasets/stitch_crops.py --data runs/ic15 runs/iiit/finetune --aligner english \
        --teacher PP-OCRv6_rec_small.onnx --count 40000 --seed 1 --out runs/stitched

A model fine-tuned on a few thousand real crops sees each of them dozens of times and learns
those words, not real text (BENCHMARKS, issue 15, run 12). StackMix (Shonenkov et al., 2021,
for handwriting) makes new real-looking samples from the same images: a CTC model's best
alignment of each crop's own label says where every letter is, the crop is cut between letters,
and pieces become new samples. Here a sample is either a piece of one crop (letters ``i..j`` of
its word: a tighter or looser cut of a real photo, as another detector would make) or the start
of one crop's word joined to the end of another's from the same source, both scaled to one
height (new letter sequences in real photos' lighting, blur and fonts).

Where a cut goes: a BiLSTM emits a letter at about the left edge of its glyph
(``crnn_ocr.visualize``), so the cut between letters ``i`` and ``i + 1`` is the column with the
least ink near letter ``i + 1``'s first emission frame. A crop is only cut when the aligner's
greedy reading already equals its label (case-insensitive alphanumeric), so the alignment is
trusted. With a ``teacher`` (any model ``load_recognizer`` opens, e.g. PP-OCRv6 small; data-making
time only) a sample is kept only when the teacher reads its new label, which drops cuts through
a glyph. Every sample is seeded by ``(seed, sample index)``, so a run reproduces.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from crnn_ocr.metrics import normalize_alnum
from crnn_ocr.synth.teacher import Reader, teacher_checked, teacher_reader
from crnn_ocr.visualize import ink_profile

if TYPE_CHECKING:
    from crnn_ocr.recognizer import Recognizer

MAX_HEIGHT = 64  # pieces are scaled to the taller one's height, at most this many rows


def glyph_cuts(gray: np.ndarray, starts: Sequence[int], num_frames: int) -> list[int]:
    """Columns of ``gray`` (H, W) where a word of ``len(starts)`` letters may be cut: ``[0, c_1,
    ..., c_{n-1}, W]``, ``c_i`` between letters ``i - 1`` and ``i``.

    ``starts`` are the letters' first emission frames over ``num_frames`` frames spread evenly on
    the width. The columns with the least ink from one and a half frames before letter ``i``'s
    first frame to one and a half after it (the emission falls on either side of the gap) form
    runs; ``c_i`` is the middle of the run nearest the first frame, kept increasing.
    """
    w = gray.shape[1]
    per_frame = w / max(num_frames, 1)
    ink = ink_profile(gray)
    cuts = [0]
    for s in starts[1:]:
        lo = max(cuts[-1] + 1, int(round((s - 1.5) * per_frame)))
        hi = min(w - 1, int(round((s + 1.5) * per_frame)))
        if hi < lo:
            cuts.append(min(lo, w - 1))
            continue
        low = np.flatnonzero(ink[lo : hi + 1] == ink[lo : hi + 1].min()) + lo
        runs = np.split(low, np.flatnonzero(np.diff(low) > 1) + 1)  # runs of adjacent columns
        x = s * per_frame
        near = min(runs, key=lambda r: max(r[0] - x, x - r[-1], 0.0))
        cuts.append(int(near[0] + near[-1] + 1) // 2)
    cuts.append(w)
    return cuts


@dataclass
class Aligned:
    """A real crop with its label and where it may be cut (``glyph_cuts``; one more than the
    label's length: each symbol of the label is a letter)."""

    image: np.ndarray  # (H, W, 3) uint8
    label: str
    cuts: list[int]

    def piece(self, i: int, j: int) -> tuple[np.ndarray, str]:
        """Letters ``i..j`` (exclusive): their columns and their text."""
        return self.image[:, self.cuts[i] : self.cuts[j]], self.label[i:j]


def join(pieces: Sequence[np.ndarray]) -> np.ndarray:
    """Pieces side by side, each scaled (aspect kept) to the tallest one's height, at most ``MAX_HEIGHT``."""
    h = min(MAX_HEIGHT, max(p.shape[0] for p in pieces))
    scaled = [cv2.resize(p, (max(1, int(round(p.shape[1] * h / p.shape[0]))), h), interpolation=cv2.INTER_AREA
                         if p.shape[0] > h else cv2.INTER_CUBIC) for p in pieces]
    return np.concatenate(scaled, axis=1)


def stitch(pool: Sequence[Sequence[Aligned]], index: int, seed: int, piece_share: float = 0.4,
           min_len: int = 2, max_len: int = 25) -> tuple[np.ndarray, str]:
    """Sample ``index``: a source (weighted by its crops), then with probability ``piece_share``
    letters ``i..j`` of one crop (neither the whole word nor fewer than ``min_len`` letters), else
    the first ``i`` letters of one crop and the last letters of another from the same source
    (at least one letter of each, ``min_len..max_len`` in all)."""
    rng = np.random.default_rng((seed, index))
    sizes = np.array([len(p) for p in pool], dtype=float)
    source = pool[int(rng.choice(len(pool), p=sizes / sizes.sum()))]
    words = [a for a in source if len(a.label) > min_len]
    if rng.random() < piece_share and words:
        a = words[int(rng.integers(len(words)))]
        n = len(a.label)
        while True:
            i = int(rng.integers(0, n - min_len + 1))
            j = int(rng.integers(i + min_len, n + 1))
            if (i, j) != (0, n):
                break
        image, text = a.piece(i, j)
        return np.ascontiguousarray(image), text
    while True:
        a, b = (source[int(k)] for k in rng.integers(len(source), size=2))
        i = int(rng.integers(1, len(a.label) + 1))
        j = int(rng.integers(0, len(b.label)))
        if min_len <= i + len(b.label) - j <= max_len:
            break
    (left, t1), (right, t2) = a.piece(0, i), b.piece(j, len(b.label))
    return join([left, right]), t1 + t2


@dataclass
class StitchStats:
    """What :func:`align_crops` and :func:`stitched_samples` saw."""

    crops: int = 0
    undecodable: int = 0
    unencodable: int = 0  # labels with a symbol outside the aligner's alphabet, or without a letter or digit
    misread: int = 0  # the aligner's greedy reading differs from the label: not cut
    aligned: int = 0
    made: int = 0
    kept: int = 0

    def summary(self) -> str:
        return (f"{self.crops} crops: {self.aligned} aligned ({self.undecodable} undecodable, {self.unencodable} "
                f"outside the alphabet or without a letter or digit, {self.misread} misread by the aligner); "
                f"kept {self.kept} of {self.made} stitched samples ({self.kept / max(1, self.made):.1%})")


def align_crops(samples: Iterable[tuple[bytes, str]], rec: Recognizer, stats: StitchStats, batch: int = 64) -> list[Aligned]:
    """Each crop the text recognizer ``rec`` reads right, with its cuts."""
    from crnn_ocr.decoding import greedy_decode, viterbi_align

    alphabet = rec.alphabet
    out: list[Aligned] = []
    pending: list[tuple[np.ndarray, str, np.ndarray]] = []

    def flush() -> None:
        frames = rec.frames_prepared([p for _, _, p in pending])
        for (image, label, _), lp in zip(pending, frames, strict=True):
            if normalize_alnum(greedy_decode(lp, alphabet).text) != normalize_alnum(label):
                stats.misread += 1
                continue
            _, spans = viterbi_align(lp, alphabet.encode(label))
            if len(spans) != len(label):
                stats.misread += 1
                continue
            # the spans' frames are over the prepared width; the cut is made on the crop itself
            gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
            cuts = glyph_cuts(gray, [a for a, _ in spans], lp.shape[0])  # frames spread over the crop as over its resized copy
            out.append(Aligned(image, label, cuts))
            stats.aligned += 1
        pending.clear()

    for data, label in samples:
        stats.crops += 1
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None or min(image.shape[:2]) < 2:
            stats.undecodable += 1
            continue
        if not normalize_alnum(label) or any(c not in alphabet for c in label):
            stats.unencodable += 1
            continue
        pending.append((image, label, rec.prepare(image)))
        if len(pending) >= batch:
            flush()
    if pending:
        flush()
    return out


def stitched_samples(pool: Sequence[Sequence[Aligned]], count: int, seed: int, read: Reader | None = None,
                     *, piece_share: float = 0.4, batch: int = 256, stats: StitchStats | None = None) -> Iterator[tuple[bytes, str]]:
    """``count`` stitched samples as ``(PNG bytes, label)``; with ``read`` (a teacher's batch read)
    only those it reads as their label (case-insensitive alphanumeric)."""
    stats = stats if stats is not None else StitchStats()

    def candidates() -> Iterator[tuple[bytes, str, bool]]:
        for k in range(count):
            image, label = stitch(pool, k, seed, piece_share)
            stats.made += 1
            yield cv2.imencode(".png", image)[1].tobytes(), label, True

    for png, label, _, right in teacher_checked(candidates(), read, batch):
        if right:
            stats.kept += 1
            yield png, label


def main(argv: Sequence[str] | None = None) -> int:
    from crnn_ocr.data import iter_lmdb_samples, write_lmdb
    from crnn_ocr.pretrained import shipped
    from crnn_ocr.recognizer import load_recognizer

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", nargs="+", required=True, help="LMDBs of real crops in the standard layout; "
                   "two crops are joined only when they come from the same one")
    p.add_argument("--aligner", default="english", help="the CTC text model whose alignments place the cuts: a checkpoint, "
                   "an ONNX file or a shipped model's name (default english)")
    p.add_argument("--teacher", help="keep only the samples this model reads as their label (ONNX or checkpoint)")
    p.add_argument("--count", type=int, default=40000, help="samples to make before the teacher's check (default 40000)")
    p.add_argument("--piece-share", type=float, default=0.4, help="share of samples cut from one crop (default 0.4); "
                   "the rest join two")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="threads of the aligner and the teacher")
    p.add_argument("--out", required=True, help="the output LMDB folder")
    a = p.parse_args(argv)
    if a.count < 1:
        p.error(f"--count must be at least 1, got {a.count}")
    if not 0.0 <= a.piece_share <= 1.0:
        p.error(f"--piece-share must be in [0, 1], got {a.piece_share}")
    for path in a.data:
        if not os.path.isfile(os.path.join(path, "data.mdb")):
            p.error(f"--data {path}: no LMDB there (data.mdb missing)")
    for name, path in (("--aligner", a.aligner), ("--teacher", a.teacher)):
        if path is not None and not os.path.isfile(path) and (name == "--teacher" or shipped(path) is None):
            p.error(f"{name} {path}: no such file" + ("" if name == "--teacher" else " nor a shipped model's name"))
    if os.path.exists(os.path.join(a.out, "data.mdb")):
        p.error(f"--out {a.out}: an LMDB already exists there")
    aligner = load_recognizer(a.aligner, threads=a.threads)
    if aligner.kind != "text":
        p.error(f"--aligner {a.aligner}: a {aligner.kind} model, not a text model")
    stats = StitchStats()
    pool = []
    for path in a.data:
        crops = align_crops(((bytes(im), label) for _, im, label in iter_lmdb_samples(path)), aligner, stats)
        if crops:
            pool.append(crops)
    if not pool:
        p.error("--data: the aligner read none of the crops right; nothing to cut")
    read = teacher_reader(a.teacher, threads=a.threads) if a.teacher else None
    count = write_lmdb(a.out, stitched_samples(pool, a.count, a.seed, read, piece_share=a.piece_share, stats=stats))
    print(f"{stats.summary()}; wrote {count} samples to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
