"""Test-time BatchNorm adaptation (``crnn_ocr.adapt``, AdaBN) on speakers never heard.

    python bench/bench_adapt.py --task classify --runs runs/loso_cls_1500 --clips data/clips
    python bench/bench_adapt.py --task speech --runs runs/loso_sp --clips data/speech

For each leave-one-speaker-out fold (``RUNS/<speaker>/last.pt``, ``bench_loso.py``'s models), the
held-out speaker's 500 recordings (``CLIPS/fsdd_<speaker>`` for ``classify``, ``singles_<speaker>``
for ``speech``) are split in two by position (even: the adaptation pool, odd: the evaluation
half; FSDD's order alternates recordings of each digit, so both halves hold every digit). The
model, loaded afresh for each column, adapts its BatchNorm statistics to the first N clips of a
seeded shuffle of the pool (no labels) and reads the evaluation half: top-1 accuracy
(``classify``) or single-digit sentence accuracy, greedy (``speech``). The last column adapts on
all 500 clips, the evaluation half included (transductive: still no label).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

SPEAKERS = ("george", "jackson", "nicolas", "theo")


def fold_reader(task: str, checkpoint: str):
    """(prepare, adapt_prepared, predict(prepared list) -> list of str) for a fresh model."""
    if task == "classify":
        from crnn_ocr.classify.reading import load_classifier

        clf = load_classifier(checkpoint, backend="torch", device="cpu")
        classes = list(clf.classes.classes)

        def predict(prepared):
            order = sorted(range(len(prepared)), key=lambda i: prepared[i].shape[1])
            labels = [""] * len(prepared)
            for start in range(0, len(order), 32):
                idx = order[start : start + 32]
                for i, k in zip(idx, clf.probabilities([prepared[i] for i in idx]).argmax(1)):
                    labels[i] = classes[int(k)]
            return labels

        return clf.prepare, clf.adapt_prepared, predict
    from crnn_ocr.recognizer import load_recognizer

    rec = load_recognizer(checkpoint, backend="torch", device="cpu", expected_kind="speech")
    return rec.prepare, rec.adapt_prepared, lambda prepared: [r.text for r in rec.read_prepared(prepared)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", choices=["classify", "speech"], required=True)
    p.add_argument("--runs", required=True, help="bench_loso.py's --out: <speaker>/last.pt per fold")
    p.add_argument("--clips", required=True, help="the folder of fsdd_<speaker> (classify) or singles_<speaker> (speech) LMDBs")
    p.add_argument("--counts", type=int, nargs="+", default=[10, 50, 250], help="adaptation clips drawn from the pool")
    p.add_argument("--folds", nargs="+", choices=SPEAKERS, default=list(SPEAKERS))
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    from crnn_ocr.data import iter_lmdb_samples

    prefix = "fsdd" if a.task == "classify" else "singles"
    heads = ["none"] + [f"{n} clips" for n in a.counts] + ["all 500 (transductive)"]
    print("| held-out speaker | " + " | ".join(heads) + " |")
    print("|---|" + "---:|" * len(heads))
    rows = []
    for speaker in a.folds:
        checkpoint = os.path.join(a.runs, speaker, "last.pt")
        samples = list(iter_lmdb_samples(Path(a.clips) / f"{prefix}_{speaker}"))
        prepare, _, _ = fold_reader(a.task, checkpoint)
        prepared = [prepare(bytes(data)) for _, data, _ in samples]
        truth = [" ".join(label.lower().split()) for _, _, label in samples]
        pool = [i for i in range(len(samples)) if i % 2 == 0]
        evaluation = [i for i in range(len(samples)) if i % 2 == 1]
        shuffled = [pool[k] for k in np.random.default_rng(a.seed).permutation(len(pool))]
        row = []
        for n in [0, *a.counts, -1]:
            _, adapt, predict = fold_reader(a.task, checkpoint)
            chosen = list(range(len(samples))) if n < 0 else shuffled[:n]
            if chosen:
                adapt([prepared[i] for i in chosen])
            read = predict([prepared[i] for i in evaluation])
            row.append(float(np.mean([" ".join(r.lower().split()) == truth[i] for r, i in zip(read, evaluation)])))
        rows.append(row)
        print(f"| {speaker} | " + " | ".join(f"{v:.3f}" for v in row) + " |", flush=True)
    print("| **mean** | " + " | ".join(f"{v:.3f}" for v in np.mean(rows, axis=0)) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
