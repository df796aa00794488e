#!/usr/bin/env python
"""Engrave single-staff incipits offline (Verovio + cairosvg) into standard-layout LMDBs
(``crnn_ocr.synth.music``).

    python datasets/synth_music.py --out data/music --count 12000 --seed 0 [--processes 1]
        [--corpus-ratio 0.7] [--val-fraction 0.1] [--height 96] [--distort 0.7]
"""

from crnn_ocr.cli import run_cli
from crnn_ocr.synth.music import main

if __name__ == "__main__":
    run_cli(main, prog="synth_music.py")
