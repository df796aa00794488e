#!/usr/bin/env python
"""Clean printed words in several fonts: word accuracy of one or more checkpoints, with the errors.

    .venv/bin/python bench/bench_clean_text.py --checkpoint A.pt [B.pt ...] [--count 1000] [--seed 11]

Each font gets ``--count`` words rendered black on white at 32 px in a 48 px tall crop, as
bench_deploy.py's clean set (dictionary words, 50% lower case, 30% Title, 20% UPPER; seed
``--seed``; bench_deploy uses seed 0 and DejaVu Sans). Fonts: DejaVu Sans, Liberation Sans and
Serif, FreeSans (Debian fonts-dejavu-core, fonts-liberation, fonts-freefont-ttf); missing ones are
skipped. Protocol: case-insensitive alphanumeric exact match. Images are read one at a time
(no batch padding), as a single-image call would.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np  # noqa: E402

from bench_deploy import clean_words, normalize, render_clean_words  # noqa: E402

FONTS = {
    "DejaVu Sans": "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "Liberation Sans": "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "Liberation Serif": "/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf",
    "FreeSans": "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
}


def _read(rec, views: bool, path: str) -> str:
    return rec.read_views([path])[0].text if views else rec.read(path).text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", nargs="+", required=True, help="crnn_ocr checkpoints (.pt) or ONNX exports")
    p.add_argument("--count", type=int, default=1000, help="words per font")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--show", type=int, default=8, help="errors to list per model and font")
    p.add_argument("--views", action="store_true", help="also read each model under test-time views (crnn_ocr.views)")
    a = p.parse_args()

    import torch

    from crnn_ocr.recognizer import load_recognizer

    torch.set_num_threads(a.threads)
    fonts = {name: path for name, path in FONTS.items() if os.path.exists(path)}
    with tempfile.TemporaryDirectory(prefix="bench_clean_") as tmp:
        words = clean_words()
        if not words:
            sys.exit("bench_clean_text: no word list (wordfreq or /usr/share/dict)")
        sets = {name: render_clean_words(Path(tmp) / str(i), words, path, a.count, np.random.default_rng(a.seed))
                for i, (name, path) in enumerate(fonts.items())}
        print(f"`python bench/bench_clean_text.py --checkpoint {' '.join(a.checkpoint)} --count {a.count} --seed {a.seed}"
              f"{' --views' if a.views else ''}`\n")
        print("| model | " + " | ".join(fonts) + " | all |")
        print("|---|" + "---|" * (len(fonts) + 1))
        notes = []
        for ck, views in [(ck, v) for ck in a.checkpoint for v in ([False, True] if a.views else [False])]:
            rec = load_recognizer(ck, device="cpu")
            read = functools.partial(_read, rec, views)
            cells, wrong_all, total = [], 0, 0
            for name, (paths, labels) in sets.items():
                wrong = [(lab, text) for lab, text in ((lab, read(path)) for path, lab in zip(paths, labels))
                         if normalize(text) != normalize(lab)]
                cells.append(f"{1 - len(wrong) / len(labels):.1%} ({len(wrong)})")
                wrong_all, total = wrong_all + len(wrong), total + len(labels)
                if wrong:
                    notes.append(f"- {Path(ck).name}{', views' if views else ''}, {name}: "
                                 + ", ".join(f"{lab} -> {text}" for lab, text in wrong[: a.show]))
            print(f"| {Path(ck).name}{', test-time views' if views else ''} | " + " | ".join(cells) + f" | {1 - wrong_all / total:.2%} ({wrong_all}) |")
        print("\nErrors (truth -> read):\n" + "\n".join(notes))


if __name__ == "__main__":
    main()
