"""Leave-one-speaker-out spoken digits: train on three FSDD speakers (plus synthetic voices), test on
the fourth, for every speaker; a clip classifier (with the MFCC baseline beside it) or a CTC
speech model.

    python datasets/audio_clips.py --source fsdd --recordings ../shared/data/speech/fsdd --speakers theo \
        --out data/clips/fsdd_theo                  # one LMDB per speaker: george, jackson, nicolas, theo
    python datasets/audio_clips.py --source tts --count 6000 --seed 11 --out data/clips/tts
    python bench/bench_loso.py --clips data/clips --extra data/clips/tts --out runs/loso -- \
        --init-from crnn_ocr/weights/spoken_digits.pt --max-steps 1500 --batch-size 32 --lr 1e-3 --mixup 0.2

Each fold runs ``tools/train.py --kind classify`` on ``fsdd_<speaker>`` of the other speakers and
``--extra`` LMDBs (``--data-ratios``: the FSDD speakers share ``--real-share`` of each batch
equally, the extra LMDBs the rest), with the arguments after ``--``, into ``OUT/<speaker>``, and
reads the held-out speaker with the run's ``last.pt`` (never a checkpoint chosen on the test
speaker: the trainer validates on it only to draw the curve). The baseline (``bench_classify``:
MFCC statistics + logistic regression) trains on the same FSDD speakers and extra LMDBs.
Prints one Markdown row per fold and the mean; ``--skip-train`` reads existing runs.

``--task speech`` (issue 17): each fold trains ``--kind speech`` on ``strings_<speaker>`` and
``singles_<speaker>`` of the other speakers (``datasets/concat_digits.py``, with and without
``--singles``) and ``--extra`` (synthetic strings, yes/no), then reads the held-out speaker's
single digits (accuracy, greedy and with the ten-word lexicon) and strings (WER), and
``--yesno`` (WER):

    python bench/bench_loso.py --task speech --clips data/speech --extra data/speech/tts data/speech/yesno_train \
        --yesno data/speech/yesno_test --out runs/loso_speech -- --init-from crnn_ocr/weights/spoken_digits.pt ...
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

from bench_classify import baseline, load_set, model_probabilities, scores  # noqa: E402
from crnn_ocr.classify.classes import ClassList  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPEAKERS = ("george", "jackson", "nicolas", "theo")


def train_fold(held_out: str, a: argparse.Namespace, train_args: list[str]) -> float:
    """Train one fold; returns its wall seconds."""
    others = [s for s in a.speakers if s != held_out]
    kinds = ["fsdd"] if a.task == "classify" else ["strings", "singles"]
    real = [str(Path(a.clips) / f"{k}_{s}") for s in others for k in kinds]
    extra = a.extra_shares or [(1 - a.real_share) / len(a.extra)] * len(a.extra)
    ratios = [a.real_share / len(real)] * len(real) + list(extra)
    if a.task == "classify":
        task = ["--kind", "classify", "--val", str(Path(a.clips) / f"fsdd_{held_out}"),
                "--alphabet", str(Path(a.clips) / f"fsdd_{others[0]}" / "classes.txt")]
    else:
        task = ["--kind", "speech", "--val", str(Path(a.clips) / f"singles_{held_out}"), "--alphabet", str(ROOT / "datasets" / "speech_chars.txt")]
    cmd = [sys.executable, str(ROOT / "tools" / "train.py"), *task, "--data", *real, *a.extra,
           "--data-ratios", *[f"{r:.4f}" for r in ratios], "--out", str(Path(a.out) / held_out), "--no-progress", *train_args]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    train_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", required=True, help="folder holding one LMDB per speaker, fsdd_<speaker>")
    p.add_argument("--speakers", nargs="+", default=list(SPEAKERS))
    p.add_argument("--folds", nargs="+", help="hold out only these speakers (default: each of --speakers)")
    p.add_argument("--extra", nargs="*", default=[], help="synthetic LMDBs added to every fold's training")
    p.add_argument("--real-share", type=float, default=0.5, help="share of each batch from the FSDD speakers (with --extra)")
    p.add_argument("--extra-shares", nargs="+", type=float, help="share of each batch from each --extra LMDB (default: the rest, equally)")
    p.add_argument("--out", required=True, help="runs go to OUT/<held-out speaker>")
    p.add_argument("--skip-train", action="store_true", help="read the runs already in OUT")
    p.add_argument("--sample-rate", type=int, default=8000, help="the baseline's rate")
    p.add_argument("--task", default="classify", choices=["classify", "speech"])
    p.add_argument("--yesno", help="speech: a yes/no test set (LMDB or label file) read by every fold's model")
    p.add_argument("--lexicon", help="speech: one word list (a line each) for every set's lexicon column, e.g. the twelve words "
                   "spoken_digits reads by default (default: each set's own words: the ten digits, yes and no)")
    a = p.parse_args(argv)
    if not a.extra:
        a.real_share = 1.0
    if a.extra_shares and len(a.extra_shares) != len(a.extra):
        p.error(f"--extra-shares: {len(a.extra_shares)} shares for {len(a.extra)} --extra LMDBs")
    if a.task == "speech":
        return speech_folds(a, train_args)
    classes = ClassList.from_file(Path(a.clips) / f"fsdd_{a.speakers[0]}" / "classes.txt")
    print("| held-out speaker | MFCC + logistic regression | model (last.pt) | training minutes |")
    print("|---|---:|---:|---:|")
    results = []
    for held_out in a.folds or a.speakers:
        minutes = 0.0 if a.skip_train else train_fold(held_out, a, train_args) / 60
        test, truth = load_set(str(Path(a.clips) / f"fsdd_{held_out}"), classes)
        sets = [load_set(str(Path(a.clips) / f"fsdd_{s}"), classes) for s in a.speakers if s != held_out]
        sets += [load_set(e, classes) for e in a.extra]
        train = ([c for clips, _ in sets for c in clips], np.concatenate([t for _, t in sets]))
        base = baseline(train, test, a.sample_rate, multilabel=False)
        base_acc = scores(base[0], truth, False)["accuracy"] if base is not None else float("nan")
        probs, _, _ = model_probabilities(str(Path(a.out) / held_out / "last.pt"), test, classes)
        acc = scores(probs, truth, False)["accuracy"]
        results.append((base_acc, acc))
        print(f"| {held_out} | {base_acc:.4f} | {acc:.4f} | {minutes:.1f} |", flush=True)
    mean = np.mean(results, axis=0)
    print(f"| **mean** | {mean[0]:.4f} | **{mean[1]:.4f}** | |")
    return 0


def speech_folds(a: argparse.Namespace, train_args: list[str]) -> int:
    from bench_speech import evaluate_set, load_eval_set
    from crnn_ocr.recognizer import load_recognizer

    print("| held-out speaker | single digits, greedy | single digits, lexicon | strings WER, greedy | strings WER, lexicon "
          "| yes/no WER, greedy | yes/no WER, lexicon | training minutes |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    words = [w.strip() for w in Path(a.lexicon).read_text(encoding="utf-8").splitlines() if w.strip()] if a.lexicon else None
    for held_out in a.folds or a.speakers:
        minutes = 0.0 if a.skip_train else train_fold(held_out, a, train_args) / 60
        rec = load_recognizer(str(Path(a.out) / held_out / "last.pt"), device="cpu", expected_kind="speech")
        singles = evaluate_set(rec, load_eval_set(str(Path(a.clips) / f"singles_{held_out}")), words)
        strings = evaluate_set(rec, load_eval_set(str(Path(a.clips) / f"strings_{held_out}")), words)
        row = [singles["greedy"].sentence_accuracy, singles["lexicon_decoder"].sentence_accuracy,
               strings["greedy"].wer, strings["lexicon_decoder"].wer]
        if a.yesno:
            yesno = evaluate_set(rec, load_eval_set(a.yesno), words)
            row += [yesno["greedy"].wer, yesno["lexicon_decoder"].wer]
        else:
            row += [float("nan")] * 2
        rows.append(row)
        print(f"| {held_out} | " + " | ".join(f"{v:.4f}" for v in row) + f" | {minutes:.1f} |", flush=True)
    mean = np.nanmean(rows, axis=0) if a.yesno else np.mean(rows, axis=0)
    print("| **mean** | " + " | ".join(f"{v:.4f}" for v in mean) + " | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
