#!/usr/bin/env python
"""Text/background colour pairs of real word crops, clustered into a palette for synth_text.py
(``crnn_ocr.synth.colors``).

    python datasets/crop_colors.py --labels runs/iiit/finetune.tsv ../shared/data/text/ic15_train.tsv \
        --out runs/colors.tsv [--clusters 64]
"""

import sys

from crnn_ocr.synth.colors import main

if __name__ == "__main__":
    sys.exit(main())
