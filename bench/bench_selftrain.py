"""Unsupervised speaker adaptation by self-training: a leave-one-speaker-out fold model (CTC or
classifier) learns the held-out speaker's voice from his unlabelled single digits, read by itself.

    python bench/bench_selftrain.py --runs runs/loso_sp1500 --clips data/speech --extra data/speech/tts \
        data/speech/yesno_train --extra-shares 0.3 0.1 --real-share 0.4 --out runs/selftrain --steps 150
    python bench/bench_selftrain.py --task classify --runs runs/loso_cls_1500 --clips data/clips --extra data/clips/tts \
        --extra-shares 0.4 --real-share 0.4 --out runs/selftrain_cls --steps 150

For each fold (``RUNS/<speaker>/last.pt``, ``bench_loso.py``'s models), the held-out speaker's 500
recordings (``CLIPS/singles_<speaker>``; ``fsdd_<speaker>`` for ``--task classify``) are split by
position as ``bench_adapt.py`` splits them: the even half is the adaptation pool (its labels are
never read, except to report how many pseudo-labels are right), the odd half the evaluation half.
``--pool-set A --eval-set B`` adapt on ``CLIPS/A_<speaker>`` and read ``CLIPS/B_<speaker>``
instead (digit strings made from the speaker's even and odd recordings, ``--lexicon-mode trie
--wer``; the strings' command is in BENCHMARKS.md). ``crnn_ocr.self_training.self_train``
(what ``tools/adapt.py --self-train`` runs) then adapts the model's BatchNorm statistics to the
pool, labels each pool clip with its own reading under the ten digit words (``--lexicon-mode
score``: the one word of highest CTC likelihood; a classifier: its top class), continues the fold
model for ``--steps`` steps on those labels beside the fold's own training data (the other
speakers' strings and singles, or their clips for a classifier, ``--real-share`` of each batch,
and ``--extra``), and adapts the statistics again.

``--rounds N`` repeats it from the last round's model. Prints one Markdown row per fold: the
evaluation half read greedy and with the ten-word lexicon (a classifier: top-1 accuracy; ``--wer``:
word error rates), unadapted, with AdaBN, and after each round of self-training (+ AdaBN); the
pseudo-labels kept and how many are right.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

SPEAKERS = ("george", "jackson", "nicolas", "theo")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def load_fold(checkpoint: str, task: str):
    if task == "classify":
        from crnn_ocr.classify.reading import load_classifier

        return load_classifier(checkpoint, backend="torch", device="cpu")
    from crnn_ocr.recognizer import load_recognizer

    return load_recognizer(checkpoint, backend="torch", device="cpu", expected_kind="speech")


def accuracy(rec, samples: list[tuple[bytes, str, str]], wer: bool = False) -> tuple[float, ...]:
    """(greedy, ten-word lexicon) sentence accuracy of a recognizer on ``samples`` (``wer``: their
    word error rates); (top-1,) of a classifier."""
    if getattr(rec, "kind", None) == "classify":
        results = rec.classify_prepared([rec.prepare(data) for data, _, _ in samples])
        return (float(np.mean([r.label == label for r, (_, label, _) in zip(results, samples)])),)
    from bench_speech import evaluate_set

    result = evaluate_set(rec, samples, list(DIGITS))
    if wer:
        return result["greedy"].wer, result["lexicon_decoder"].wer
    return result["greedy"].sentence_accuracy, result["lexicon_decoder"].sentence_accuracy


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", choices=["speech", "classify"], default="speech", help="the folds' models: CTC (speech) or classifiers")
    p.add_argument("--runs", required=True, help="bench_loso.py's --out: <speaker>/last.pt per fold")
    p.add_argument("--clips", required=True, help="the folder of singles_<speaker> and strings_<speaker> LMDBs (classify: fsdd_<speaker>)")
    p.add_argument("--pool-set", help="adapt on CLIPS/<this>_<speaker> and read --eval-set instead of splitting the singles by position")
    p.add_argument("--eval-set", help="with --pool-set: the LMDB name read, CLIPS/<this>_<speaker>")
    p.add_argument("--wer", action="store_true", help="report word error rates, not sentence accuracy (digit strings)")
    p.add_argument("--extra", nargs="*", default=[], help="synthetic LMDBs of the folds' training, kept in every batch")
    p.add_argument("--extra-shares", nargs="+", type=float)
    p.add_argument("--real-share", type=float, default=0.4, help="share of each batch from the other speakers' data "
                   "(0: none of them); the pseudo-labelled pool gets what --real-share and --extra-shares leave")
    p.add_argument("--min-confidence", type=float, default=0.0, help="leave out pool clips whose reading is less likely than this")
    p.add_argument("--lexicon-mode", default="score", choices=["score", "trie"], help="score: one digit word per clip; trie: any sequence")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--folds", nargs="+", choices=SPEAKERS, default=list(SPEAKERS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    if (a.pool_set is None) != (a.eval_set is None):
        p.error("--pool-set and --eval-set go together")
    if a.wer and a.task == "classify":
        p.error("--wer: a classifier is scored by top-1 accuracy")
    if a.extra_shares and len(a.extra_shares) != len(a.extra):
        p.error(f"--extra-shares: {len(a.extra_shares)} shares for {len(a.extra)} --extra LMDBs")
    extra_shares = a.extra_shares or ([0.4 / len(a.extra)] * len(a.extra) if a.extra else [])
    from bench_speech import load_eval_set
    from crnn_ocr.self_training import self_train

    classify = a.task == "classify"
    reading = "top-1" if classify else "WER greedy / lexicon" if a.wer else "greedy / lexicon"
    print(f"| held-out speaker | none, {reading} | AdaBN | " + " | ".join(f"self-training round {r + 1} + AdaBN" for r in range(a.rounds))
          + " | pseudo-labels kept (right) | minutes |")
    print("|---|" + "---:|" * (a.rounds + 4))
    rows = []
    for speaker in a.folds:
        if a.pool_set:
            pool, evaluation = (load_eval_set(str(Path(a.clips) / f"{name}_{speaker}")) for name in (a.pool_set, a.eval_set))
        else:
            samples = load_eval_set(str(Path(a.clips) / f"{'fsdd' if classify else 'singles'}_{speaker}"))
            pool = [s for k, s in enumerate(samples) if k % 2 == 0]
            evaluation = [s for k, s in enumerate(samples) if k % 2 == 1]
        init = str(Path(a.runs) / speaker / "last.pt")
        rec = load_fold(init, a.task)
        row = [accuracy(rec, evaluation, a.wer)]
        rec.adapt_prepared([rec.prepare(data) for data, _, _ in pool])
        row.append(accuracy(rec, evaluation, a.wer))
        others = [s for s in SPEAKERS if s != speaker]
        kinds = ("fsdd",) if classify else ("strings", "singles")
        real = [str(Path(a.clips) / f"{k}_{s}") for s in others for k in kinds] if a.real_share > 0 else []
        keep, shares = real + list(a.extra), [a.real_share / max(len(real), 1)] * len(real) + list(extra_shares)
        truth = [" ".join(label.lower().split()) for _, label, _ in pool]
        seconds, kept_note = 0.0, ""
        for r in range(a.rounds):
            start = time.perf_counter()
            with contextlib.redirect_stdout(sys.stderr):  # the trainer's own lines stay out of the table
                trained, report = self_train(init, [data for data, _, _ in pool], Path(a.out) / speaker / f"round{r + 1}",
                                             lexicon=None if classify else DIGITS, lexicon_mode=a.lexicon_mode, steps=a.steps, lr=a.lr, batch_size=a.batch_size,
                                             keep_data=keep, keep_shares=shares, min_confidence=a.min_confidence, seed=a.seed)
            seconds += time.perf_counter() - start
            right = sum(label == t for label, t in zip(report.labels, truth))
            kept_note += f"{' / ' if r else ''}{report.kept} ({right})"
            init = str(report.checkpoint)
            row.append(accuracy(trained, evaluation, a.wer))
        rows.append(row)
        print(f"| {speaker} | " + " | ".join(" / ".join(f"{v:.3f}" for v in r) for r in row) + f" | {kept_note} | {seconds / 60:.1f} |",
              flush=True)
    mean = np.mean(np.array(rows), axis=0)
    print("| **mean** | " + " | ".join(" / ".join(f"{v:.3f}" for v in r) for r in mean) + " | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
