#!/usr/bin/env python
"""Synthetic spoken digit strings and word sequences (espeak-ng) straight into a speech LMDB
(``crnn_ocr.synth.speech``).

    python datasets/synth_speech.py --out data/speech_synth --count 3000 --seed 0 --sample-rate 8000 \
        [--content mixed|digits|words] [--words FILE] [--min-words 1] [--max-words 5]
"""

from crnn_ocr.cli import run_cli
from crnn_ocr.synth.speech import main

if __name__ == "__main__":
    run_cli(main, prog="synth_speech.py")
