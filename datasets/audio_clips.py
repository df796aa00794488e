#!/usr/bin/env python
"""Labelled clips for audio classification and tagging, straight into LMDBs (``crnn_ocr.synth.clips``).

    python datasets/audio_clips.py --source fsdd --recordings ../shared/data/speech/fsdd \
        --speakers george jackson nicolas --out data/clips/digits_train        # one digit word per clip
    python datasets/audio_clips.py --source fsdd --recordings ../shared/data/speech/fsdd --speakers theo --out data/clips/digits_theo
    python datasets/audio_clips.py --source fsdd --recordings ../shared/data/speech/fsdd --label speaker --split train \
        --out data/clips/speakers_train                                         # speaker identification
    python datasets/audio_clips.py --source espeak --count 3000 --out data/clips/espeak
    python datasets/audio_clips.py --source yesno --recordings ../shared/data/speech/yesno --files 0 30 --out data/clips/yesno_train
    python datasets/audio_clips.py --source mix --recordings ../shared/data/speech/fsdd --speakers george jackson nicolas \
        --espeak-count 1000 --count 6000 --out data/clips/mix_train             # 1-3 digits over noise: tags
    python datasets/audio_clips.py --source drums --kits "The Black Pearl 1.0" HardElectro1 "circAfrique v4" \
        --sample-rate 16000 --seconds 1 --out data/clips/drums_test             # real drum hits (apt-get install hydrogen-drumkits)
"""

from crnn_ocr.cli import run_cli
from crnn_ocr.synth.clips import main

if __name__ == "__main__":
    run_cli(main, prog="audio_clips.py")
