"""Unsupervised speaker adaptation by self-training: a leave-one-speaker-out CTC fold model learns
the held-out speaker's voice from his unlabelled single digits, read by itself.

    python bench/bench_selftrain.py --runs runs/loso_sp1500 --clips data/speech --extra data/speech/tts \
        data/speech/yesno_train --extra-shares 0.3 0.1 --pseudo-share 0.2 --real-share 0.4 --out runs/selftrain -- \
        --max-steps 150 --batch-size 32 --lr 5e-4 --schedule cosine --warmup-steps 20 --workers 1

For each fold (``RUNS/<speaker>/last.pt``, ``bench_loso.py --task speech``'s models), the held-out
speaker's 500 recordings (``CLIPS/singles_<speaker>``) are split by position as ``bench_adapt.py``
splits them: the even half is the adaptation pool (its labels are never read, except to report
how many pseudo-labels are right), the odd half the evaluation half. Then:

1. the model's BatchNorm statistics are re-estimated on the pool (AdaBN, ``crnn_ocr.adapt``);
2. each pool clip gets the digit word with the highest exact CTC likelihood among the ten
   (``batch_ctc_log_likelihood``), and its posterior over the ten; clips whose posterior is below
   ``--min-posterior`` are left out;
3. ``tools/train.py --kind speech`` continues the fold model on those pseudo-labelled clips
   (``--pseudo-share`` of each batch) beside the fold's own training data (the other speakers'
   strings and singles, ``--real-share``, and ``--extra``), with the arguments after ``--``;
4. the new model's statistics are re-estimated on the pool again and it reads the evaluation half.

``--rounds N`` repeats 2-4 from the last round's model. Prints one Markdown row per fold: the
evaluation half read greedy and with the ten-word lexicon, unadapted, with AdaBN, and after
self-training (+ AdaBN); the pseudo-labels kept and how many are right.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPEAKERS = ("george", "jackson", "nicolas", "theo")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def load_fold(checkpoint: str):
    from crnn_ocr.recognizer import load_recognizer

    return load_recognizer(checkpoint, backend="torch", device="cpu", expected_kind="speech")


def log_probs_of(rec, prepared: list[np.ndarray]) -> list[np.ndarray]:
    """Per-clip (T, K) log-probabilities, in batches of similar widths."""
    order = sorted(range(len(prepared)), key=lambda i: prepared[i].shape[1])
    out: list[np.ndarray] = [np.empty(0)] * len(prepared)
    for start in range(0, len(order), 32):
        idx = order[start : start + 32]
        lp, lengths = rec.log_probs([prepared[i] for i in idx])
        for i, row, n in zip(idx, lp, lengths):
            out[i] = row[:n]
    return out


def word_posteriors(rec, prepared: list[np.ndarray]) -> np.ndarray:
    """(N, 10): each clip's posterior over the ten digit words (exact CTC likelihoods, normalized)."""
    from crnn_ocr.decoding import batch_ctc_log_likelihood

    labels = [rec.alphabet.encode(w) for w in DIGITS]
    scores = np.stack([batch_ctc_log_likelihood(lp, labels) for lp in log_probs_of(rec, prepared)])  # (N, 10)
    scores = scores - scores.max(axis=1, keepdims=True)
    probs = np.exp(scores)
    return probs / probs.sum(axis=1, keepdims=True)


def accuracy(rec, samples: list[tuple[bytes, str, str]]) -> tuple[float, float]:
    """(greedy, ten-word lexicon) sentence accuracy of ``rec`` on ``samples``."""
    from bench_speech import evaluate_set

    result = evaluate_set(rec, samples, list(DIGITS))
    return result["greedy"].sentence_accuracy, result["lexicon_decoder"].sentence_accuracy


def train_round(a: argparse.Namespace, speaker: str, init: str, pseudo: Path, out: Path, train_args: list[str]) -> float:
    others = [s for s in SPEAKERS if s != speaker]
    real = [str(Path(a.clips) / f"{k}_{s}") for s in others for k in ("strings", "singles")] if a.real_share > 0 else []
    extra_shares = a.extra_shares or [(1 - a.real_share - a.pseudo_share) / max(len(a.extra), 1)] * len(a.extra)
    ratios = [a.pseudo_share] + [a.real_share / len(real)] * len(real) + list(extra_shares)
    cmd = [sys.executable, str(ROOT / "tools" / "train.py"), "--kind", "speech", "--alphabet", str(ROOT / "datasets" / "speech_chars.txt"),
           "--init-from", init, "--data", str(pseudo), *real, *a.extra, "--data-ratios", *[f"{r:.4f}" for r in ratios],
           "--val", str(pseudo), "--out", str(out), "--no-progress", "--seed", str(a.seed), *train_args]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    train_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", required=True, help="bench_loso.py --task speech's --out: <speaker>/last.pt per fold")
    p.add_argument("--clips", required=True, help="the folder of singles_<speaker> and strings_<speaker> LMDBs")
    p.add_argument("--extra", nargs="*", default=[], help="synthetic LMDBs of the folds' training, kept in every batch")
    p.add_argument("--extra-shares", nargs="+", type=float)
    p.add_argument("--real-share", type=float, default=0.4, help="share of each batch from the other speakers' strings and singles "
                   "(0: none of the fold's own data, only the pseudo-labelled pool and --extra)")
    p.add_argument("--pseudo-share", type=float, default=0.2, help="share of each batch from the pseudo-labelled pool")
    p.add_argument("--min-posterior", type=float, default=0.0, help="leave out pool clips whose best word is less likely than this")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--folds", nargs="+", choices=SPEAKERS, default=list(SPEAKERS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    if a.extra_shares and len(a.extra_shares) != len(a.extra):
        p.error(f"--extra-shares: {len(a.extra_shares)} shares for {len(a.extra)} --extra LMDBs")
    from crnn_ocr.data import iter_lmdb_samples, write_lmdb

    print("| held-out speaker | none, greedy / lexicon | AdaBN | " + " | ".join(f"self-training round {r + 1} + AdaBN" for r in range(a.rounds))
          + " | pseudo-labels kept (right) | minutes |")
    print("|---|" + "---:|" * (a.rounds + 4))
    rows = []
    for speaker in a.folds:
        samples = [(bytes(data), label, f"singles_{speaker}#{i}") for i, data, label in iter_lmdb_samples(Path(a.clips) / f"singles_{speaker}")]
        pool = [s for k, s in enumerate(samples) if k % 2 == 0]
        evaluation = [s for k, s in enumerate(samples) if k % 2 == 1]
        init = str(Path(a.runs) / speaker / "last.pt")
        rec = load_fold(init)
        row = [accuracy(rec, evaluation)]
        pool_prepared = [rec.prepare(data) for data, _, _ in pool]
        rec.adapt_prepared(pool_prepared)
        row.append(accuracy(rec, evaluation))
        seconds, kept_note = 0.0, ""
        for r in range(a.rounds):
            post = word_posteriors(rec, pool_prepared)  # the adapted model of the last round
            best = post.argmax(1)
            keep = [k for k in range(len(pool)) if post[k, best[k]] >= a.min_posterior]
            right = sum(DIGITS[best[k]] == " ".join(pool[k][1].lower().split()) for k in keep)
            kept_note += f"{' / ' if r else ''}{len(keep)} ({right})"
            folder = Path(a.out) / speaker / f"round{r + 1}"
            pseudo = folder / "pseudo"
            write_lmdb(pseudo, [(pool[k][0], DIGITS[best[k]]) for k in keep], overwrite=True)
            seconds += train_round(a, speaker, init, pseudo, folder / "run", train_args)
            init = str(folder / "run" / "last.pt")
            rec = load_fold(init)
            rec.adapt_prepared(pool_prepared)
            row.append(accuracy(rec, evaluation))
        rows.append(row)
        print(f"| {speaker} | " + " | ".join(f"{g:.3f} / {x:.3f}" for g, x in row) + f" | {kept_note} | {seconds / 60:.1f} |", flush=True)
    mean = np.mean(np.array(rows), axis=0)
    print("| **mean** | " + " | ".join(f"{g:.3f} / {x:.3f}" for g, x in mean) + " | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
