#!/usr/bin/env python
"""New words in real pixels: real crops cut between their letters and joined again (``crnn_ocr.synth.stitched``).

    python datasets/stitch_crops.py --data runs/ic15 runs/iiit/finetune --aligner english \
        --teacher runs/PP-OCRv6_rec_small.onnx --count 40000 --seed 1 --out runs/stitched
"""

import sys

from crnn_ocr.synth.stitched import main

if __name__ == "__main__":
    sys.exit(main())
