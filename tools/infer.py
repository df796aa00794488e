#!/usr/bin/env python
"""Read words from images with a trained checkpoint or an ONNX export.

    python tools/infer.py --image word.png                                   # the shipped English model
    python tools/infer.py --image word.png --checkpoint runs/crnn/best.pt
    python tools/infer.py --image word.png --checkpoint runs/crnn/best.onnx   # onnxruntime, no torch
    python tools/infer.py --image crops/ 'scans/*.jpg' --checkpoint best.pt --lexicon words.txt --json

    python tools/infer.py --audio clip.wav 'clips/*.flac' --checkpoint speech.pt [--lexicon digits.txt]
    python tools/infer.py --audio clip.wav --checkpoint classifier.pt [--top-k 3] [--json]   # classify / tag

    python tools/infer.py --image crops/ --checkpoint PP-OCRv6_rec_small.onnx --beam 10   # a PaddleOCR recognizer
    python tools/infer.py --audio new_speaker/ --model spoken_digits --adapt   # BatchNorm statistics of these clips first
    python tools/infer.py --image crops/ --views      # each image read ten ways, the reading they agree on (slower, better)

Prints one line per image: path, text, confidence (tab-separated), or JSON lines with --json.
With --audio (a speech checkpoint): path, transcript, confidence and each word with its start
and end in seconds, ``word@0.32-0.71`` (tab-separated). A classifier: path, class, probability
(a tagger: its tags and their probabilities, comma-separated); --json: every class's probability.
Many files are decoded by worker threads and batched by width; a progress bar and the
images/s go to stderr. An image wider than the model's maximum width (a text line) is read
at full resolution in overlapping windows, as one reading.

Exit status: 0 every file was read; 1 some files could not be read (each is named on stderr
in one line, every other file's line is still printed); 2 bad arguments or a missing
model, file or extra, or a model of the other media (one line on stderr, nothing read); also 2
for a clip shorter than a classifier's minimum (named in one line; the other files are still read).

This script parses the arguments; ``crnn_ocr.infer.infer`` does the reading.
"""

from __future__ import annotations

import os

from crnn_ocr.cli import ArgumentParser, run_cli  # noqa: E402
from crnn_ocr.infer import PROGRESS_MIN_FILES, InferConfig, infer  # noqa: E402
from crnn_ocr.pretrained import MODELS  # noqa: E402


def parse_args(argv: list[str] | None) -> InferConfig:
    p = ArgumentParser(prog="infer.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--image", nargs="+", help="image files, folders or glob patterns")
    p.add_argument("--audio", nargs="+", help="audio files (WAV, FLAC, OGG, ...), folders or glob patterns; a speech checkpoint")
    p.add_argument("--checkpoint", help="a crnn_ocr checkpoint (.pt) or an ONNX export (.onnx, tools/export.py); "
                   "default: the shipped model for the input (crnn_ocr/pretrained.py)")
    p.add_argument("--model", choices=sorted(MODELS), help="a model that ships with crnn_ocr, by name "
                   "(crnn_ocr/pretrained.py); without this or --checkpoint: the input's (english for --image, "
                   "score with --musicxml/--midi, spoken_digits for --audio)")
    p.add_argument("--preset", choices=["ppocr"], help="read --checkpoint as a PaddleOCR (PP-OCR) recognition ONNX file "
                   "(found without it when the file has no crnn_ocr metadata)")
    p.add_argument("--alphabet", help="a foreign model's characters, one a line (PaddleOCR's dict file), when its file lacks them")
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"],
                   help="auto: onnx for a .onnx file (and for a shipped model with an ONNX export), else torch")
    p.add_argument("--lexicon", help="word list, one per line: output is constrained to these words "
                   "(a shipped closed-vocabulary model, spoken_digits, reads with its own words by default)")
    p.add_argument("--no-lexicon", action="store_true", help="read a shipped closed-vocabulary model without its words (greedy)")
    p.add_argument("--lexicon-mode", default="auto", choices=["auto", "score", "candidates", "trie", "words"])
    p.add_argument("--max-edit-distance", type=int, default=3, help="candidate radius for large lexicons")
    p.add_argument("--beam", type=int, default=1, help="beam width (1 = greedy best path)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                   help="torch backend: bf16 autocast is ~2x faster on CPUs with AVX512-BF16/AMX, not bit-identical")
    p.add_argument("--threads", type=int, help="threads for the model (default: the backend's, one per core)")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="image decoding threads")
    p.add_argument("--progress", default="auto", choices=["auto", "on", "off"],
                   help=f"progress bar and images/s on stderr (auto: for {PROGRESS_MIN_FILES}+ files)")
    p.add_argument("--json", action="store_true", help="one JSON object per line: text, confidence, score, spans")
    p.add_argument("--visualize", help="draw a box over each symbol's glyph: an image file name (spans.png; with "
                   "several images spans_0001.png, spans_0002.png, ... in input order), or a folder (one PNG per image)")
    p.add_argument("--musicxml", help="score checkpoints: write what one staff image reads as MusicXML (needs music21)")
    p.add_argument("--midi", help="score checkpoints: write what one staff image reads as a MIDI file (needs music21)")
    p.add_argument("--key-lm", action="store_true", help="score models: beam search (width --beam, at least 10) with a prior "
                   "that a note has the alteration its key signature and bar imply (crnn_ocr.music.key_lm)")
    p.add_argument("--adapt", action="store_true", help="re-estimate the model's BatchNorm statistics on all the inputs "
                   "given (one speaker, microphone or scanner; no labels) before reading them (crnn_ocr.adapt, AdaBN); "
                   "torch backend; every input is decoded twice")
    p.add_argument("--views", action="store_true", help="read each image ten ways (width stretched and squeezed, a border "
                   "added or trimmed: crnn_ocr.views) and keep the reading they agree on; ten forward passes per image")
    p.add_argument("--no-recheck", action="store_true", help="read every image once, without the model's second look "
                   "at the words it is unsure of (the english model reads about one clean word in ten again: crnn_ocr.views.Recheck)")
    p.add_argument("--device", help="cpu, cuda (default: CUDA if present; torch backend)")
    p.add_argument("--top-k", type=int, help="classifiers: print the k most probable classes, each with its probability")
    a = p.parse_args(argv)
    if (a.image is None) == (a.audio is None):
        p.error("give --image or --audio (one of them)")
    for name in ("beam", "batch_size", "threads", "workers", "top_k"):
        value = getattr(a, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    return InferConfig(
        sources=a.image or a.audio, media="image" if a.image else "audio", checkpoint=a.checkpoint, model=a.model,
        preset=a.preset, alphabet=a.alphabet, backend=a.backend, lexicon=a.lexicon, no_lexicon=a.no_lexicon,
        lexicon_mode=a.lexicon_mode, max_edit_distance=a.max_edit_distance,
        beam=a.beam, batch_size=a.batch_size, precision=a.precision, threads=a.threads, workers=a.workers,
        progress=a.progress, json=a.json, visualize=a.visualize, musicxml=a.musicxml, midi=a.midi, device=a.device,
        top_k=a.top_k, key_lm=a.key_lm, adapt=a.adapt, views=a.views,
        recheck=not a.no_recheck,
    )


def main(argv: list[str] | None = None) -> int:
    return infer(parse_args(argv))


if __name__ == "__main__":
    run_cli(main)
