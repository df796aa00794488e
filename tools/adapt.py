#!/usr/bin/env python
"""Adapt a model's BatchNorm statistics to unlabelled inputs of a new domain and save it (AdaBN).

    python tools/adapt.py --model spoken_digits --audio my_voice/ --out runs/my_digits.pt
    python tools/adapt.py --checkpoint runs/digits/best.pt --audio 'new_mic/*.wav' --out runs/digits_new_mic.pt
    python tools/infer.py --audio clip.wav --checkpoint runs/my_digits.pt         # reads with the adapted statistics

The inputs need no labels: a few dozen or more of one speaker, microphone or scanner. Only the
BatchNorm means and variances change (``crnn_ocr.adapt``); the written file holds what reading
needs (like ``export.py --format pt``) with ``adapted_on`` saying how many inputs it saw, and
exports to ONNX like any checkpoint. ``infer.py --adapt`` does the same for one reading, unsaved.
Any model with BatchNorm layers: CTC recognizers (text, score, speech) and classifiers or taggers.
"""

from __future__ import annotations

import os
import sys

from crnn_ocr.cli import ArgumentParser, UsageError, existing_file, expand_inputs, model_source, run_cli
from crnn_ocr.pretrained import MODELS


def parse_args(argv: list[str] | None):
    p = ArgumentParser(prog="adapt.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", help="a crnn_ocr checkpoint (.pt)")
    p.add_argument("--model", choices=sorted(MODELS), help="a shipped model, by name")
    p.add_argument("--image", nargs="+", help="image files, folders or glob patterns")
    p.add_argument("--audio", nargs="+", help="audio files, folders or glob patterns")
    p.add_argument("--out", required=True, help="the adapted checkpoint to write")
    args = p.parse_args(argv)
    if (args.checkpoint is None) == (args.model is None):
        p.error("give --checkpoint or --model (one of them)")
    if (args.image is None) == (args.audio is None):
        p.error("give --image or --audio (one of them)")
    if args.checkpoint and args.checkpoint.lower().endswith(".onnx"):
        p.error(f"--checkpoint {args.checkpoint}: an ONNX export's statistics are fixed in the file; adapt the .pt checkpoint, then export it")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from crnn_ocr.frontend import media_named

    media = media_named("image" if args.image else "audio")
    paths = expand_inputs(args.image or args.audio, media.extensions, media.name)
    if args.checkpoint:
        existing_file(args.checkpoint, "checkpoint")
    source = model_source(args.checkpoint, None, "text", model=args.model)
    from crnn_ocr.checkpoint import inference_state, load_checkpoint, save_checkpoint
    from crnn_ocr.classify.reading import load_classifier
    from crnn_ocr.pretrained import pretrained_path
    from crnn_ocr.recognizer import load_recognizer
    from crnn_ocr.tasks import WrongTask

    path = args.checkpoint or os.fspath(pretrained_path(source))
    try:
        reader = load_recognizer(path, backend="torch", device="cpu")
    except WrongTask:
        reader = load_classifier(path, backend="torch", device="cpu")
    if reader.frontend.media.name != media.name:
        raise UsageError(f"{path}: reads {reader.frontend.media.name}, not --{media.name} files")
    from crnn_ocr.adapt import adapt_to_files

    skipped = []

    def on_skip(p: str, e: ValueError) -> None:
        skipped.append(p)
        sys.stderr.write(f"adapt.py: skipped {e if p in str(e) else f'{p}: {e}'}\n")

    try:
        layers, used = adapt_to_files(reader, paths, on_skip)
    except ValueError as e:
        raise UsageError(str(e) if len(skipped) == len(paths) else f"{path}: {e}") from None  # no input, or no BatchNorm
    state = load_checkpoint(path)
    state["model"] = {k: v.detach().cpu().contiguous() for k, v in reader.backend.model.state_dict().items()}
    save_checkpoint(args.out, inference_state(state, adapted_on=f"{used} {media.name} inputs"))
    print(f"wrote {args.out}: {layers} BatchNorm layers adapted to {used} inputs"
          + (f" ({len(skipped)} unreadable, skipped)" if skipped else ""))
    return 0


if __name__ == "__main__":
    run_cli(main)
