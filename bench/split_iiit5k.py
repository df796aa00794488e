#!/usr/bin/env python
"""Split ../shared/data/text/iiit5k_train.tsv into fine-tune / dev / test label files, by scene.

    python bench/split_iiit5k.py --out /tmp/iiit [--tsv ../shared/data/text/iiit5k_train.tsv] [--test 1000] [--dev 200]

IIIT5K names a crop ``<scene>_<k>.jpg``: crops of one photo share lighting, font and camera, so
the split is by scene (every crop of a photo lands in the same part), drawn with a fixed seed.
Writes ``finetune.tsv``, ``dev.tsv`` and ``test.tsv`` (``absolute path<TAB>word``); turn them into
LMDBs with ``tools/create_lmdb.py --labels``. ``test`` is held out from all training and model
selection.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

DEFAULT_TSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "text" / "iiit5k_train.tsv"


def split_by_scene(rows: list[tuple[str, str]], n_test: int, n_dev: int, seed: int = 0) -> dict[str, list[tuple[str, str]]]:
    """Rows ``(path, word)`` -> ``{"test", "dev", "finetune"}``; whole scenes fill test, then dev, the rest fine-tunes."""
    scenes: dict[str, list[tuple[str, str]]] = {}
    for path, word in rows:
        scenes.setdefault(Path(path).stem.split("_")[0], []).append((path, word))
    order = np.random.default_rng(seed).permutation(sorted(scenes))
    parts: dict[str, list[tuple[str, str]]] = {"test": [], "dev": [], "finetune": []}
    for scene in order:
        part = "test" if len(parts["test"]) < n_test else "dev" if len(parts["dev"]) < n_dev else "finetune"
        parts[part].extend(scenes[scene])
    return parts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tsv", type=Path, default=DEFAULT_TSV)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--test", type=int, default=1000)
    p.add_argument("--dev", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    rows = []
    for line in a.tsv.read_text(encoding="utf-8").splitlines():
        if "\t" in line:
            path, word = line.split("\t", 1)
            rows.append((str((a.tsv.parent / path).resolve()), word))
    a.out.mkdir(parents=True, exist_ok=True)
    for name, part in split_by_scene(rows, a.test, a.dev, a.seed).items():
        (a.out / f"{name}.tsv").write_text("".join(f"{path}\t{word}\n" for path, word in part), encoding="utf-8")
        print(f"{name}: {len(part)} crops from {len({Path(q).stem.split('_')[0] for q, _ in part})} scenes")


if __name__ == "__main__":
    main()
