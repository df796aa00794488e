#!/usr/bin/env python
"""Synthetic word images rendered straight into a standard-layout LMDB (``crnn_ocr.synth.text``).

    python datasets/synth_text.py --out data/synth --count 20000 --seed 0 [--words FILE]
        [--alphabet alphanumeric] [--fonts DIR_OR_FILE ...] [--height 32] [--gray]

``--help`` lists every option; the module's docstring says what varies and why.
"""

import sys

from crnn_ocr.synth.text import main

if __name__ == "__main__":
    sys.exit(main())
