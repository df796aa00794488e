"""Text/background colour pairs of real word crops, clustered into a palette for synth_text.py.

    python datasets/crop_colors.py --labels runs/iiit/finetune.tsv ../shared/data/text/ic15_train.tsv \
        --out runs/colors.tsv [--clusters 64]

What MJSynth did with its training set: each crop is split into text and background by Otsu's
threshold on its gray levels (the class that holds most of the crop's border is the background),
the median colour of each class away from the edge between them is the crop's (text, background)
pair, and k-means over the pairs gives ``--clusters`` pairs weighted by how many crops each holds.
Crops whose two classes are closer than ``--min-contrast`` in luminance are left out (no clear
text). The output holds only colours (one ``text_r text_g text_b bg_r bg_g bg_b count`` line per
cluster), never pixels of the crops; ``synth_text.py --colors`` samples from it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

_LUMA = np.array([0.299, 0.587, 0.114])


def crop_pair(rgb: np.ndarray, min_contrast: float = 40.0) -> np.ndarray | None:
    """``(2, 3)`` float array (text colour, background colour) of one RGB crop, or None if unclear."""
    if rgb.ndim != 3 or min(rgb.shape[:2]) < 4:
        return None
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    _, fg = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    border = np.concatenate([fg[0], fg[-1], fg[:, 0], fg[:, -1]])
    if border.mean() > 0.5:  # the bright class holds the border: it is the background
        fg = 1 - fg
    inner = cv2.erode(fg, np.ones((3, 3), np.uint8)).astype(bool)  # away from the anti-aliased edge
    outer = cv2.erode(1 - fg, np.ones((3, 3), np.uint8)).astype(bool)
    if inner.sum() < 4 or outer.sum() < 4:
        return None
    pair = np.stack([np.median(rgb[inner], axis=0), np.median(rgb[outer], axis=0)]).astype(np.float64)
    if abs(float((pair[0] - pair[1]) @ _LUMA)) < min_contrast:
        return None
    return pair


def read_labels(paths: Sequence[str]) -> Iterator[Path]:
    """Image paths of ``path<TAB>label`` files (relative paths are relative to the file's folder)."""
    for tsv in paths:
        root = Path(tsv).parent
        for line in Path(tsv).read_text(encoding="utf-8").splitlines():
            if line.strip():
                name = line.split("\t", 1)[0]
                yield Path(name) if Path(name).is_absolute() else root / name


def cluster(pairs: np.ndarray, clusters: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k-means of ``(n, 2, 3)`` pairs: centres ``(k, 2, 3)`` and member counts ``(k,)``, largest first."""
    k = min(clusters, len(pairs))
    data = pairs.reshape(len(pairs), 6).astype(np.float32)
    cv2.setRNGSeed(seed)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 100, 0.1)
    _, labels, centres = cv2.kmeans(data, k, None, criteria, 5, cv2.KMEANS_PP_CENTERS)
    counts = np.bincount(labels.ravel(), minlength=k)
    order = np.argsort(-counts, kind="stable")
    return centres[order].reshape(k, 2, 3), counts[order]


def write_palette(path: str | Path, centres: np.ndarray, counts: np.ndarray) -> None:
    lines = ["# text_r text_g text_b bg_r bg_g bg_b count"]
    for (t, b), n in zip(centres, counts):
        if n:
            lines.append(" ".join(f"{v:.0f}" for v in (*t, *b)) + f" {int(n)}")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Cluster the text/background colours of real word crops into a palette.")
    p.add_argument("--labels", nargs="+", required=True, help="path<TAB>label files of real crops")
    p.add_argument("--out", required=True, help="palette file to write")
    p.add_argument("--clusters", type=int, default=64)
    p.add_argument("--min-contrast", type=float, default=40.0, help="least text/background luminance gap kept")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.clusters < 1:
        p.error(f"--clusters must be positive, got {a.clusters}")
    for tsv in a.labels:
        if not Path(tsv).is_file():
            p.error(f"--labels: {tsv} is not a file")
    pairs, unreadable, unclear = [], 0, 0
    for path in read_labels(a.labels):
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            unreadable += 1
            continue
        pair = crop_pair(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), a.min_contrast)
        if pair is None:
            unclear += 1
        else:
            pairs.append(pair)
    if not pairs:
        print("crop_colors: error: no crop gave a clear text/background pair", file=sys.stderr)
        return 2
    centres, counts = cluster(np.stack(pairs), a.clusters, a.seed)
    write_palette(a.out, centres, counts)
    print(f"{len(pairs)} crops -> {len(centres)} colour pairs in {a.out} ({unclear} unclear, {unreadable} unreadable)")
    return 0

