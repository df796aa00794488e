#!/usr/bin/env python
"""What a model's second look at unsure words costs: one image at a time, read with and without
its recheck (``crnn_ocr.views.Recheck``) in the same process, each word both ways in turn.

    .venv/bin/python bench/bench_recheck.py --checkpoint crnn_ocr/weights/english_crnn_compact.onnx [--count 300] [--threads 1]

Sets: ``--count`` clean printed words (bench_deploy's: DejaVu Sans, black on white, seed 0) and,
when ../shared/data/text is present, the IIIT5K dev crops (bench_english's split). Per set: the
share of words read again, the median and mean ms per word (path -> text) with and without, and
accuracy (case-insensitive alphanumeric) both ways. A model exported without a recheck is read
with ``Recheck()`` (the views and threshold the English model ships with).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np  # noqa: E402

from bench_deploy import clean_words, normalize, render_clean_words  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a crnn_ocr image model (.pt or .onnx)")
    p.add_argument("--count", type=int, default=300, help="clean words")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()

    import torch

    from crnn_ocr.recognizer import load_recognizer
    from crnn_ocr.views import Recheck

    torch.set_num_threads(a.threads)
    threads = {"threads": a.threads} if a.checkpoint.endswith(".onnx") else {"device": "cpu"}
    once = load_recognizer(a.checkpoint, recheck=False, **threads)
    policy = load_recognizer(a.checkpoint, **threads).recheck or Recheck()
    twice = load_recognizer(a.checkpoint, recheck=policy, **threads)
    print(f"`python bench/bench_recheck.py --checkpoint {a.checkpoint} --count {a.count} --threads {a.threads}`\n")
    print(f"{once.backend.name}, {a.threads} thread(s); recheck: views {[v.width for v in policy.views]} (widths), below {policy.below}\n")
    print("| set | words | read again | ms/word median, once / with recheck | mean | accuracy once / with recheck |")
    print("|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="bench_recheck_") as tmp:
        sets = {"clean": render_clean_words(Path(tmp) / "clean", clean_words(), "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                                            a.count, np.random.default_rng(0))}
        try:
            from bench_english import load_rows

            rows = load_rows(None, "dev")
            sets["IIIT5K dev"] = ([r[0] for r in rows], [r[1] for r in rows])
        except OSError as e:
            print(f"(IIIT5K dev skipped: {e})", file=sys.stderr)
        for name, (paths, labels) in sets.items():
            for path in paths:  # warm-up: kernel set-up per shape and the decoder's compiled kernels are not counted
                twice.read(path)
            times: dict[str, list[float]] = {"once": [], "twice": []}
            right = {"once": 0, "twice": 0}
            again = 0
            for path, label in zip(paths, labels):
                for key, rec in (("once", once), ("twice", twice)):
                    t0 = time.perf_counter()
                    res = rec.read(path)
                    times[key].append(1000 * (time.perf_counter() - t0))
                    right[key] += normalize(res.text) == normalize(label)
                    if key == "once":
                        again += res.confidence < policy.below
            n = len(paths)
            med = {k: statistics.median(v) for k, v in times.items()}
            mean = {k: statistics.fmean(v) for k, v in times.items()}
            print(f"| {name} | {n} | {again / n:.1%} | {med['once']:.2f} / {med['twice']:.2f} | {mean['once']:.2f} / {mean['twice']:.2f} "
                  f"| {right['once'] / n:.1%} / {right['twice'] / n:.1%} |")


if __name__ == "__main__":
    main()
