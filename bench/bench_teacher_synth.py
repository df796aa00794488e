"""How legible are our synthetic words? PP-OCRv6 small (the issue-15 teacher) reads samples of LMDBs.

    python bench/bench_teacher_synth.py --data runs/synth/s501 runs/synth/s601 runs/ic15 --count 1000 \
        [--model PP-OCRv6_rec_small.onnx | --wheel rapidocr-3.10.0-py3-none-any.whl]

For the first ``--count`` samples of each LMDB: the teacher's case-insensitive alphanumeric word
accuracy, its CER, and the share it cannot read at all (CER > 0.5 against the label): samples a
strong reader cannot read are candidates to drop from training (issue 15, part 4). Real crops
(an LMDB of ICDAR 2015 crops) give the reference for how often the teacher fails on real text.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import editdistance

from bench_ppocr import find_ppocr_model
from crnn_ocr.data import iter_lmdb_samples
from crnn_ocr.metrics import normalize_alnum
from crnn_ocr.recognizer import load_recognizer


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", nargs="+", required=True, help="LMDBs in the standard layout")
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--model", help="PP-OCRv6_rec_small.onnx")
    p.add_argument("--wheel", help="a rapidocr wheel to take the model from")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = find_ppocr_model(a.model, a.wheel, Path(tmp))
        if model is None:
            sys.exit("bench_teacher_synth.py: PP-OCRv6_rec_small.onnx not found: give --model or --wheel")
        rec = load_recognizer(model, threads=1)
        print("| LMDB | samples | teacher word accuracy | CER | unreadable (CER > 0.5) |")
        print("|---|---|---|---|---|")
        for path in a.data:
            images, labels = [], []
            for _, image, label in iter_lmdb_samples(path):
                if len(images) == a.count:
                    break
                images.append(bytes(image))
                labels.append(label)
            texts = [r.text for r in rec.read_batch(images)]
            right = errors = chars = unreadable = 0
            for text, label in zip(texts, labels):
                hyp, ref = normalize_alnum(text), normalize_alnum(label)
                d = editdistance.eval(hyp, ref)
                right += hyp == ref
                errors += d
                chars += max(1, len(ref))
                unreadable += d > 0.5 * max(1, len(ref))
            n = len(labels)
            print(f"| {path} | {n} | {right / n:.1%} | {errors / chars:.3f} | {unreadable / n:.1%} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
