#!/usr/bin/env python
"""Strongly perturbed copies of real word crops that a teacher still reads (``crnn_ocr.synth.perturbed``).

    unzip -j rapidocr-3.10.0-py3-none-any.whl '*/PP-OCRv6_rec_small.onnx' -d runs/   # the teacher, never shipped
    python datasets/teacher_copies.py --data runs/ic15 runs/iiit/finetune --teacher runs/PP-OCRv6_rec_small.onnx \
        --copies 6 --seed 1 --out runs/teacher_copies
"""

import sys

from crnn_ocr.synth.perturbed import main

if __name__ == "__main__":
    sys.exit(main())
