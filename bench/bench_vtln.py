"""Test-time vocal-tract-length normalization for a clip classifier: does reading a held-out speaker
through warped mel filterbanks help?

    python bench/bench_vtln.py --runs runs/loso_cls_1500 --clips data/clips

For each leave-one-speaker-out fold (``OUT/<speaker>/last.pt`` of ``bench_loso.py``), the held-out
speaker's clips (``CLIPS/fsdd_<speaker>``) are read with the filterbank warped by each factor of
``--warps`` (the VTLP warp the classifier saw in training, ``crnn_ocr.speech.audio.log_mel``):
top-1 accuracy per warp, then three label-free ways to use them: the probabilities averaged over
all warps, each clip at its most confident warp, and the whole speaker at the one warp whose mean
top probability is highest (classic per-speaker VTLN). No label chooses anything.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from crnn_ocr.classify.reading import load_classifier  # noqa: E402
from crnn_ocr.data import iter_lmdb_samples  # noqa: E402
from crnn_ocr.speech.audio import load_audio, log_mel  # noqa: E402

SPEAKERS = ("george", "jackson", "nicolas", "theo")


def fold_probabilities(checkpoint: str, clips: str, warps: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """(W, N, K) probabilities of the N clips under each warp, and the (N,) true class indices."""
    clf = load_classifier(checkpoint)
    classes = list(clf.classes.classes)
    waves, truth = [], []
    for _, data, label in iter_lmdb_samples(clips):
        waves.append(load_audio(bytes(data), None, frontend=clf.frontend))
        truth.append(classes.index(label))
    out = np.zeros((len(warps), len(waves), len(classes)))
    for w, warp in enumerate(warps):
        specs = []
        for wave in waves:
            spec = log_mel(wave, clf.frontend, warp=warp).numpy()  # (n_mels, frames)
            if spec.shape[1] < clf.min_width:
                spec = np.pad(spec, [(0, 0), (0, clf.min_width - spec.shape[1])], mode="edge")
            specs.append(spec)
        order = sorted(range(len(specs)), key=lambda i: specs[i].shape[1])
        for start in range(0, len(order), 32):
            idx = order[start : start + 32]
            out[w, idx] = clf.probabilities([specs[i] for i in idx])
    return out, np.array(truth)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", required=True, help="bench_loso.py's --out: <speaker>/last.pt per fold")
    p.add_argument("--clips", required=True, help="the folder of fsdd_<speaker> LMDBs")
    p.add_argument("--warps", type=float, nargs="+", default=[0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15, 1.2])
    a = p.parse_args()
    if 1.0 not in a.warps:
        p.error("--warps must include 1.0 (the plain reading)")
    print("| held-out speaker | " + " | ".join(f"warp {w:g}" for w in a.warps) + " | mean over warps | each clip's most confident | speaker's most confident |")
    print("|---|" + "---:|" * (len(a.warps) + 3))
    sums = np.zeros(len(a.warps) + 3)
    for speaker in SPEAKERS:
        probs, truth = fold_probabilities(os.path.join(a.runs, speaker, "last.pt"), os.path.join(a.clips, f"fsdd_{speaker}"), a.warps)
        per_warp = [(probs[w].argmax(1) == truth).mean() for w in range(len(a.warps))]
        averaged = (probs.mean(0).argmax(1) == truth).mean()
        per_clip = (probs[probs.max(2).argmax(0), np.arange(len(truth))].argmax(1) == truth).mean()
        per_speaker = per_warp[int(np.argmax(probs.max(2).mean(1)))]
        row = np.array(per_warp + [averaged, per_clip, per_speaker])
        sums += row
        print(f"| {speaker} | " + " | ".join(f"{v:.3f}" for v in row) + " |", flush=True)
    print("| **mean** | " + " | ".join(f"{v:.3f}" for v in sums / len(SPEAKERS)) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
