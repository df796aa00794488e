"""Score-reading accuracy: symbol error rate and sequence accuracy of a score checkpoint.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_music.py --checkpoint runs/score/best.pt \
        --val data/music/val [--primus ../shared/data/music/primus_example/Data] [--beam 1] [--key-lm]

``--val``: an LMDB of staff images labelled with semantic token sequences (datasets/synth_music.py
writes one, split by tune). Symbol error rate (SER) = token edit distance / reference tokens,
summed over the set; sequence accuracy = exact readings / images; "valid" = readings that are
valid music (crnn_ocr.music.validate_semantic). ``--primus``: a PrIMuS folder tree
(<id>/<id>.png + .semantic) read image by image, each reading printed with its SER; labels
with tokens outside the model's vocabulary are counted (a model cannot read what it has no
symbol for). Prints two Markdown tables: the totals, and the symbol error rate split by what went
wrong (``crnn_ocr.music.errors``: pitch, duration, missed or extra notes, clefs, keys, metres,
barlines, ...; each column is that category's edits / reference tokens, so a row's columns add up
to its SER) with the SER when pitch is ignored; and the notes read at a wrong pitch (with the right
value or not) by how far off: another alteration on the right line or space, one step, 2-3 steps,
an octave, other; and the share of notes read at a wrong pitch by the staff's clef.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import editdistance  # noqa: E402


@dataclass
class ScoreMetrics:
    """Token-level accuracy over a set."""

    images: int = 0
    exact: int = 0
    edits: int = 0
    ref_tokens: int = 0
    valid: int = 0
    seconds: float = 0.0
    pitchless_edits: int = 0
    by_kind: Counter = field(default_factory=Counter)
    by_offset: Counter = field(default_factory=Counter)
    by_clef: dict = field(default_factory=dict)  # the reference's first clef -> [staves, notes, notes at a wrong pitch]

    def add(self, hyp: list[str], ref: list[str]) -> int:
        from crnn_ocr.music import validate_semantic
        from crnn_ocr.music.errors import breakdown, pitch_offsets, pitchless

        d = int(editdistance.eval(hyp, ref))
        kinds = breakdown(hyp, ref)
        assert sum(kinds.values()) == d, (hyp, ref)
        self.by_kind.update(kinds)
        offsets = pitch_offsets(hyp, ref)
        self.by_offset.update(offsets)
        clef = next((t.partition("-")[2] for t in ref if t.startswith("clef-")), "none")
        counts = self.by_clef.setdefault(clef, [0, 0, 0])
        counts[0] += 1
        counts[1] += sum(t.startswith(("note-", "gracenote-")) for t in ref)
        counts[2] += sum(offsets.values())
        self.pitchless_edits += int(editdistance.eval(pitchless(hyp), pitchless(ref)))
        self.images += 1
        self.exact += hyp == ref
        self.edits += d
        self.ref_tokens += len(ref)
        self.valid += bool(hyp) and not validate_semantic(hyp)
        return d

    @property
    def ser(self) -> float:
        return self.edits / max(1, self.ref_tokens)

    def row(self, name: str) -> str:
        n = max(1, self.images)
        return (f"| {name} | {self.images} | {self.ser:.4f} | {self.exact / n:.4f} | {self.valid / n:.4f} | "
                f"{self.images / self.seconds if self.seconds else 0:.1f} |")

    def kind_row(self, name: str) -> str:
        from crnn_ocr.music.errors import CATEGORIES

        n = max(1, self.ref_tokens)
        cells = " | ".join(f"{self.by_kind.get(c, 0) / n:.4f}" for c in CATEGORIES if c in KIND_COLUMNS)
        other = sum(v for k, v in self.by_kind.items() if k not in KIND_COLUMNS) / n
        return f"| {name} | {self.ser:.4f} | {cells} | {other:.4f} | {self.pitchless_edits / n:.4f} |"

    def offset_row(self, name: str) -> str:
        from crnn_ocr.music.errors import PITCH_OFFSETS

        total = sum(self.by_offset.values())
        cells = " | ".join(f"{self.by_offset.get(c, 0)} ({self.by_offset.get(c, 0) / max(1, total):.0%})"
                           for c in PITCH_OFFSETS)
        return f"| {name} | {total} | {cells} |"

    def clef_row(self, name: str, clefs: list[str]) -> str:
        cells = []
        for c in clefs:
            staves, notes, wrong = self.by_clef.get(c, (0, 0, 0))
            cells.append(f"{wrong / notes:.1%} ({staves})" if notes else "-")
        return f"| {name} | {' | '.join(cells)} |"


KIND_COLUMNS = ("pitch", "duration", "pitch+duration", "note", "rest", "clef", "key", "time", "barline")


def evaluate_lmdb(rec, path: str, batch_size: int = 32, limit: int | None = None, views: bool = False) -> ScoreMetrics:
    """Read every image of an LMDB (the first ``limit``) and compare token sequences; ``views``:
    read under test-time views (``crnn_ocr.views``)."""
    from crnn_ocr.data import iter_lmdb_samples

    samples = list(iter_lmdb_samples(path))[:limit]
    m = ScoreMetrics()
    start = time.perf_counter()
    for k in range(0, len(samples), batch_size):
        chunk = samples[k : k + batch_size]
        read = rec.read_views if views else rec.read_batch
        results = read([image for _, image, _ in chunk], batch_size=batch_size)
        for (_, _, label), res in zip(chunk, results):
            m.add(res.text.split(), label.split())
    m.seconds = time.perf_counter() - start
    return m


def read_primus(rec, root: str) -> ScoreMetrics:
    """Read each PrIMuS image, printing its reading, reference and SER."""
    from crnn_ocr.music import validate_semantic
    from crnn_ocr.music.primus import scan_primus

    entries, _ = scan_primus(root)
    m = ScoreMetrics()
    start = time.perf_counter()
    for image, label in entries:
        if not image.is_file():
            continue
        ref = label.split()
        hyp = rec.read(image).text.split()
        d = m.add(hyp, ref)
        unknown = [t for t in ref if t not in rec.alphabet]
        issues = validate_semantic(hyp) if hyp else []
        print(f"{image.name}: SER {d / max(1, len(ref)):.3f} ({d} edits / {len(ref)} tokens); "
              f"{len(unknown)} reference tokens outside the model's vocabulary {unknown[:5]}; "
              f"{'valid music' if hyp and not issues else 'not valid music: ' + (str(issues[0]) if issues else 'empty')}")
        print(f"  read: {' '.join(hyp)}")
        print(f"  ref:  {' '.join(ref)}")
    m.seconds = time.perf_counter() - start
    return m


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--val", nargs="*", default=[], help="LMDBs of staves with semantic labels")
    p.add_argument("--primus", help="a PrIMuS folder tree to read image by image")
    p.add_argument("--beam", type=int, default=1)
    p.add_argument("--key-lm", action="store_true", help="beam search (at least 10) with the key-signature and bar prior "
                   "(crnn_ocr.music.key_lm), as tools/infer.py --key-lm reads")
    p.add_argument("--views", action="store_true", help="read the --val sets under test-time views (crnn_ocr.views)")
    p.add_argument("--limit", type=int, help="read only the first N images of each --val set")
    args = p.parse_args(argv)
    import torch

    from crnn_ocr.recognizer import load_recognizer

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from crnn_ocr.music.key_lm import key_lm_decoder_options

    options = key_lm_decoder_options(args.beam) if args.key_lm else {"beam_width": args.beam}
    rec = load_recognizer(args.checkpoint, device="cpu", **options)
    if rec.kind != "score":
        p.error(f"{args.checkpoint}: is a {rec.kind} model, not a score model")
    sets = [(Path(v).as_posix(), evaluate_lmdb(rec, v, limit=args.limit, views=args.views)) for v in args.val]
    if args.primus and Path(args.primus).is_dir():
        sets.append((f"PrIMuS {Path(args.primus).as_posix()}", read_primus(rec, args.primus)))
    print("| set | images | SER | sequence accuracy | valid music | images/s |")
    print("|---|---|---|---|---|---|")
    print("\n".join(m.row(name) for name, m in sets))
    print()
    print(f"| set | SER | {' | '.join(KIND_COLUMNS)} | other | SER without pitch |")
    print("|---|" + "---|" * (len(KIND_COLUMNS) + 3))
    print("\n".join(m.kind_row(name) for name, m in sets))
    from crnn_ocr.music.errors import PITCH_OFFSETS

    print()
    print(f"| set | notes read at a wrong pitch | {' | '.join(PITCH_OFFSETS)} |")
    print("|---|" + "---|" * (len(PITCH_OFFSETS) + 1))
    print("\n".join(m.offset_row(name) for name, m in sets))
    clefs = sorted({c for _, m in sets for c in m.by_clef}, key=lambda c: -sum(m.by_clef.get(c, (0,))[0] for _, m in sets))
    print()
    print(f"| set: notes at a wrong pitch (staves), by clef | {' | '.join(clefs)} |")
    print("|---|" + "---|" * len(clefs))
    print("\n".join(m.clef_row(name, clefs) for name, m in sets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
