"""Audio classification and tagging: a trained classifier beside the MFCC + logistic regression baseline.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_classify.py --train data/clips/digits_train \
        --test data/clips/digits_theo --checkpoint runs/digits/best.pt [--confusion]
    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_classify.py --task tag --train data/clips/mix_train \
        --test data/clips/mix_test --checkpoint runs/tags/best.pt

Both read LMDBs of ``datasets/audio_clips.py`` (the classes: ``--classes``, else the training
LMDB's ``classes.txt``). The baseline is the classic one: per clip, 13 MFCCs (DCT-II of a 40-band
log-mel spectrogram, 25 ms windows every 10 ms) and their deltas, summarized by their mean and
standard deviation over time (52 numbers), standardized, then scikit-learn's logistic regression
(one-vs-rest for tags). scikit-learn is a bench-only dependency (the ``bench`` extra): without it
the baseline row says so and the model is still measured. Prints a Markdown table: accuracy for
classification, mAP, mean AUC and d-prime for tagging (``crnn_ocr.classify.metrics``); a clip
shorter than the model's minimum counts as wrong (a tagger: all scores 0). "ms/clip" is one clip
at a time from its encoded bytes to class probabilities (decoding, features, model), median
thread CPU time over the first ``--time-clips`` test clips after one warm-up, on the thread count
``OMP_NUM_THREADS`` gives (1 unless set).

``--pocketsphinx`` (classification, classes that are English words such as the digit names) adds a
speaker-independent peer: PocketSphinx 5 with the US English acoustic model its wheel bundles
(trained on many voices; 16 kHz, so clips are resampled), restricted by a JSGF grammar to exactly
one class name per clip, 0.2 s of silence added at each end. It reads words, not
probabilities: a clip it reads as nothing counts as wrong. A bench-only dependency (the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from crnn_ocr.classify.classes import ClassList  # noqa: E402
from crnn_ocr.classify.metrics import accuracy, confusion_csv, confusion_matrix, tagging_metrics  # noqa: E402
from crnn_ocr.data import iter_lmdb_samples  # noqa: E402

N_MELS, N_MFCC = 40, 13
PS_RATE, PS_PAD_S = 16000, 0.2  # PocketSphinx's en-us model's sample rate; silence added at each end of a clip


def dct_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Orthonormal DCT-II (n_out, n_in): ``mfcc = D @ log_mel``."""
    k, n = np.arange(n_out)[:, None], np.arange(n_in)[None, :]
    d = np.sqrt(2.0 / n_in) * np.cos(np.pi * k * (2 * n + 1) / (2 * n_in))
    d[0] /= np.sqrt(2.0)
    return d


def mfcc_stats(data: bytes, sample_rate: int) -> np.ndarray:
    """Encoded audio -> (52,) float64: mean and std over time of 13 MFCCs and their deltas."""
    from crnn_ocr.speech.audio import AudioFrontend, load_audio, log_mel_numpy

    frontend = AudioFrontend(sample_rate=sample_rate, n_mels=N_MELS)
    logs = log_mel_numpy(load_audio(data, frontend=frontend), frontend, normalize=False).astype(np.float64)  # (40, T)
    mfcc = dct_matrix(N_MFCC, N_MELS) @ logs  # (13, T)
    delta = np.gradient(mfcc, axis=1) if mfcc.shape[1] > 1 else np.zeros_like(mfcc)
    feats = np.vstack([mfcc, delta])  # (26, T)
    return np.r_[feats.mean(axis=1), feats.std(axis=1)]


def load_set(path: str, classes: ClassList) -> tuple[list[bytes], np.ndarray]:
    """(encoded clips, targets: class indices (N,) or multi-hot (N, K)) of an LMDB."""
    clips, targets = [], []
    for _, data, label in iter_lmdb_samples(path):
        ids = classes.encode(label)  # ValueError naming the label for an unknown class
        clips.append(bytes(data))
        if classes.multilabel:
            row = np.zeros(classes.num_classes)
            row[ids] = 1
            targets.append(row)
        else:
            targets.append(ids[0])
    return clips, np.array(targets)


def predictions(probabilities: np.ndarray) -> np.ndarray:
    """(N,) class indices: each row's argmax, -1 for a row of zeros (a clip not read), so that it
    counts as wrong whatever its class."""
    return np.where(probabilities.max(axis=1) > 0, probabilities.argmax(axis=1), -1)


def scores(probabilities: np.ndarray, truth: np.ndarray, multilabel: bool) -> dict[str, float]:
    if multilabel:
        m = tagging_metrics(probabilities, truth)
        return {"mAP": m.mean_average_precision, "AUC": m.mean_auc, "d'": m.d_prime}
    return {"accuracy": accuracy(predictions(probabilities), truth)}


def baseline(train: tuple[list[bytes], np.ndarray], test: list[bytes], sample_rate: int,
             multilabel: bool) -> tuple[np.ndarray, Callable[[bytes], Any]] | None:
    """MFCC statistics + logistic regression -> (test probabilities (N, K), one clip's prediction
    as a function, for timing); None without scikit-learn."""
    if importlib.util.find_spec("sklearn") is None:
        return None
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_train = np.stack([mfcc_stats(c, sample_rate) for c in train[0]])
    x_test = np.stack([mfcc_stats(c, sample_rate) for c in test])
    regression = LogisticRegression(max_iter=5000, C=1.0)
    model = make_pipeline(StandardScaler(), OneVsRestClassifier(regression) if multilabel else regression)
    model.fit(x_train, train[1])
    probabilities = model.predict_proba(x_test)

    def one(clip: bytes) -> Any:
        return model.predict_proba(mfcc_stats(clip, sample_rate)[None])

    if multilabel:
        return probabilities, one
    full = np.zeros((len(test), int(train[1].max()) + 1 if len(train[1]) else 0))
    full[:, model.classes_] = probabilities  # classes never seen in training stay at 0
    return full, one


def pocketsphinx_reader(class_names: tuple[str, ...]) -> Callable[[bytes], int] | str:
    """PocketSphinx's bundled US English model restricted to one of ``class_names`` per clip ->
    a function from an encoded clip to its class index (-1: read as nothing); a string saying why
    it cannot run (not installed, a class name outside its dictionary)."""
    if importlib.util.find_spec("pocketsphinx") is None:
        return 'skipped: needs pocketsphinx (pip install -e ".[bench]")'
    from pocketsphinx import Decoder

    from crnn_ocr.speech.audio import load_audio

    decoder = Decoder(samprate=PS_RATE, loglevel="FATAL")
    unknown = [name for name in class_names if decoder.lookup_word(name) is None]
    if unknown:
        return f"skipped: {unknown[0]!r} is not in PocketSphinx's dictionary"
    decoder.add_jsgf_string("classes", "#JSGF V1.0;\ngrammar classes;\npublic <class> = " + " | ".join(class_names) + " ;\n")
    decoder.activate_search("classes")
    silence = np.zeros(int(PS_PAD_S * PS_RATE), dtype=np.float32)

    def one(clip: bytes) -> int:
        wave = np.concatenate([silence, load_audio(clip, target_rate=PS_RATE), silence])  # (n,) float32 at 16 kHz
        decoder.start_utt()
        decoder.process_raw((np.clip(wave, -1, 1) * 32767).astype("<i2").tobytes(), full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        words = hypothesis.hypstr.split() if hypothesis is not None else []
        return class_names.index(words[0]) if len(words) == 1 else -1

    return one


def ms_per_clip(one: Callable[[bytes], Any], clips: list[bytes], count: int) -> float:
    """Median thread CPU milliseconds of ``one(clip)`` over the first ``count`` clips (one warm-up)."""
    one(clips[0])
    times = []
    for clip in clips[:count]:
        start = time.thread_time()
        one(clip)
        times.append(time.thread_time() - start)
    return 1e3 * statistics.median(times)


def model_probabilities(checkpoint: str, clips: list[bytes], classes: ClassList) -> tuple[np.ndarray, int, Callable[[bytes], Any]]:
    """A classifier's probabilities (N, K) on the clips, columns in ``classes``' order; (probabilities,
    clips under its minimum width, one clip's prediction as a function, for timing). ``ValueError``
    when the model lacks one of ``classes``."""
    from crnn_ocr.classify.reading import ClipTooShort, load_classifier

    clf = load_classifier(checkpoint)
    missing = [c for c in classes.classes if c not in clf.classes]
    if missing:
        raise ValueError(f"{checkpoint}: the model has no class {missing[0]!r} (its classes: {', '.join(clf.classes.classes)})")
    columns = [clf.classes.index(c) for c in classes.classes]
    out = np.zeros((len(clips), len(columns)))
    prepared, kept, short = [], [], 0
    for i, clip in enumerate(clips):
        try:
            prepared.append(clf.prepare(clip))
            kept.append(i)
        except ClipTooShort:
            short += 1
    for start in range(0, len(kept), 64):
        out[kept[start : start + 64]] = clf.probabilities(prepared[start : start + 64])[:, columns]

    def one(clip: bytes) -> Any:
        return clf.probabilities([clf.prepare(clip)])

    return out, short, one


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", help="training LMDB (the baseline's; its classes.txt is the class list); without it no baseline")
    p.add_argument("--test", required=True, help="test LMDB")
    p.add_argument("--checkpoint", help="a classifier checkpoint or .onnx export to measure beside the baseline")
    p.add_argument("--task", default="classify", choices=["classify", "tag"])
    p.add_argument("--classes", help="class list file (default: TRAIN/classes.txt, else TEST/classes.txt)")
    p.add_argument("--sample-rate", type=int, default=8000, help="the baseline's rate")
    p.add_argument("--time-clips", type=int, default=100, help="clips timed one at a time for ms/clip")
    p.add_argument("--confusion", action="store_true", help="classify: also print each method's confusion matrix (CSV)")
    p.add_argument("--pocketsphinx", action="store_true", help="classify: add PocketSphinx (en-us, a grammar of the class names) as a peer")
    a = p.parse_args(argv)
    classes = ClassList.from_file(a.classes or Path(a.train or a.test) / "classes.txt", multilabel=a.task == "tag")
    train, (test, truth) = load_set(a.train, classes) if a.train else ([], np.zeros(0)), load_set(a.test, classes)
    rows: list[tuple[str, np.ndarray | None, str, str]] = []
    fitted = baseline(train, test, a.sample_rate, classes.multilabel) if a.train else None
    if not a.train:
        rows.append(("MFCC stats + logistic regression", None, "-", "skipped: no --train"))
    elif fitted is None:
        rows.append(("MFCC stats + logistic regression", None, "-", "skipped: needs scikit-learn (pip install -e \".[bench]\")"))
    else:
        rows.append(("MFCC stats + logistic regression", fitted[0], f"{ms_per_clip(fitted[1], test, a.time_clips):.2f}", ""))
    if a.checkpoint:
        probs, short, one = model_probabilities(a.checkpoint, test, classes)
        rows.append((f"{Path(a.checkpoint).name}", probs, f"{ms_per_clip(one, test, a.time_clips):.2f}",
                     f"{short} clips under the model's minimum" if short else ""))
    if a.pocketsphinx:
        reader = pocketsphinx_reader(classes.classes) if not classes.multilabel else "skipped: it reads one class per clip, not tags"
        if isinstance(reader, str):
            rows.append(("PocketSphinx 5, en-us, grammar of the classes", None, "-", reader))
        else:
            read = np.array([reader(clip) for clip in test])
            onehot = np.zeros((len(test), classes.num_classes))
            onehot[read >= 0, read[read >= 0]] = 1
            unread = int(np.sum(read < 0))
            rows.append(("PocketSphinx 5, en-us, grammar of the classes", onehot, f"{ms_per_clip(reader, test, a.time_clips):.2f}",
                         f"{unread} clips read as nothing" if unread else ""))
    names = ["accuracy"] if not classes.multilabel else ["mAP", "AUC", "d'"]
    print(f"{len(test)} test clips, {len(train[0])} training clips, {classes.num_classes} classes, "
          f"{os.environ.get('OMP_NUM_THREADS')} thread(s)\n")
    print("| method | " + " | ".join(names) + " | ms/clip | note |")
    print("|---|" + "---:|" * (len(names) + 1) + "---|")
    for name, probs, ms, note in rows:
        cells = [f"{v:.4f}" for v in scores(probs, truth, classes.multilabel).values()] if probs is not None else ["-"] * len(names)
        print(f"| {name} | " + " | ".join(cells) + f" | {ms} | {note} |")
    if a.confusion and not classes.multilabel:
        for name, probs, _, _ in rows:
            if probs is not None:
                predicted = predictions(probs)
                read = predicted >= 0  # clips not read have no column; the accuracy counts them
                matrix = confusion_matrix(predicted[read], truth[read], classes.num_classes)
                print(f"\n{name}:\n" + confusion_csv(matrix, classes.classes))
    return 0 if any(probs is not None for _, probs, _, _ in rows) else 2


if __name__ == "__main__":
    sys.exit(main())
