#!/usr/bin/env python
"""Spoken digit strings built from real single-digit recordings, straight into a speech LMDB
(``crnn_ocr.synth.digits``).

    python datasets/concat_digits.py --recordings ../shared/data/speech/fsdd --out data/fsdd_train \
        --speakers george jackson nicolas --count 4000 --max-digits 5 --sample-rate 8000
    python datasets/concat_digits.py --recordings ../shared/data/speech/fsdd --out data/fsdd_theo \
        --speakers theo --singles                       # every recording once, as it is
"""

from crnn_ocr.cli import run_cli
from crnn_ocr.synth.digits import main

if __name__ == "__main__":
    run_cli(main, prog="concat_digits.py")
