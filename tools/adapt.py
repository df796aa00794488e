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

``--self-train STEPS`` goes further: the adapted model reads the inputs (a CTC recognizer with
``--lexicon``, constrained to its words; a classifier, its top class; a tagger, its tags over
threshold), and training continues for STEPS steps on those readings as labels
(``crnn_ocr.self_training.self_train``), with ``--keep-data`` LMDBs of the model's own training
kind in every batch so that it keeps what it knew; then the statistics are re-estimated:

    python tools/adapt.py --model spoken_digits --audio my_voice/ --self-train 150 --lexicon digits.txt \
        --keep-data tts_strings/ --out my_digits.pt
    python tools/adapt.py --model digit_classifier --audio my_voice/ --self-train 150 --keep-data tts_words/ --out my_classifier.pt
"""

from __future__ import annotations

import os
import sys
import tempfile

from crnn_ocr.cli import ArgumentParser, UsageError, existing_file, expand_inputs, model_source, run_cli
from crnn_ocr.pretrained import MODELS


def parse_args(argv: list[str] | None):
    p = ArgumentParser(prog="adapt.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", help="a crnn_ocr checkpoint (.pt)")
    p.add_argument("--model", choices=sorted(MODELS), help="a shipped model, by name")
    p.add_argument("--image", nargs="+", help="image files, folders or glob patterns")
    p.add_argument("--audio", nargs="+", help="audio files, folders or glob patterns")
    p.add_argument("--out", required=True, help="the adapted checkpoint to write")
    p.add_argument("--self-train", type=int, default=0, metavar="STEPS",
                   help="then train this many steps on the model's own readings of the inputs (0: statistics only)")
    p.add_argument("--lexicon", help="--self-train: word list, one per line: a CTC recognizer's readings are constrained to these words")
    p.add_argument("--lexicon-mode", default="auto", choices=["auto", "score", "candidates", "trie", "words"],
                   help="--self-train: how the lexicon constrains a reading (score: one word per input)")
    p.add_argument("--keep-data", nargs="+", default=[], metavar="LMDB", help="--self-train: training data kept in every batch")
    p.add_argument("--keep-shares", nargs="+", type=float, help="--self-train: each --keep-data LMDB's share of a batch (default 0.8 split equally)")
    p.add_argument("--min-confidence", type=float, default=0.0, help="--self-train: leave out readings less likely than this")
    p.add_argument("--lr", type=float, default=5e-4, help="--self-train: learning rate")
    p.add_argument("--batch-size", type=int, default=32, help="--self-train: batch size")
    p.add_argument("--work", help="--self-train: keep the pseudo-labels and the run here (default: a temporary folder)")
    args = p.parse_args(argv)
    if args.self_train < 0:
        p.error(f"--self-train: a number of steps >= 0, got {args.self_train}")
    if not args.self_train and (args.lexicon or args.keep_data or args.keep_shares or args.work):
        p.error("--lexicon, --keep-data, --keep-shares and --work go with --self-train")
    if args.keep_shares and len(args.keep_shares) != len(args.keep_data):
        p.error(f"--keep-shares: {len(args.keep_shares)} shares for {len(args.keep_data)} --keep-data LMDBs")
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

    if args.self_train:  # self_train adapts the statistics itself, before and after training
        return self_train_and_save(args, path, reader, paths, on_skip)
    try:
        layers, used = adapt_to_files(reader, paths, on_skip)
    except ValueError as e:
        raise UsageError(str(e) if len(skipped) == len(paths) else f"{path}: {e}") from None  # no input, or no BatchNorm
    note = f" ({len(skipped)} unreadable, skipped)" if skipped else ""
    state = load_checkpoint(path)
    state["model"] = {k: v.detach().cpu().contiguous() for k, v in reader.backend.model.state_dict().items()}
    save_checkpoint(args.out, inference_state(state, adapted_on=f"{used} {media.name} inputs"))
    print(f"wrote {args.out}: {layers} BatchNorm layers adapted to {used} inputs{note}")
    return 0


def self_train_and_save(args, path: str, reader, paths: list[str], on_skip) -> int:
    """``--self-train``: ``crnn_ocr.self_training.self_train`` on the inputs (``on_skip(path, error)``
    for each unreadable one), the result saved."""
    from pathlib import Path

    from crnn_ocr.checkpoint import inference_state, load_checkpoint, save_checkpoint
    from crnn_ocr.recognizer import Recognizer
    from crnn_ocr.self_training import self_train

    if args.lexicon and not isinstance(reader, Recognizer):
        raise UsageError(f"--lexicon: {path} is a {reader.kind} model, which reads its classes: a lexicon is for CTC recognizers")
    if args.lexicon:
        existing_file(args.lexicon, "lexicon")
    for folder in args.keep_data:
        if not (Path(folder) / "data.mdb").is_file():
            raise UsageError(f"--keep-data {folder}: not an LMDB (no data.mdb)")
    with tempfile.TemporaryDirectory(prefix="self_train_") as tmp:
        try:
            trained, report = self_train(path, [Path(p).read_bytes() for p in paths], args.work or tmp, lexicon=args.lexicon,
                                         lexicon_mode=args.lexicon_mode, steps=args.self_train, lr=args.lr, batch_size=args.batch_size,
                                         keep_data=args.keep_data, keep_shares=args.keep_shares, min_confidence=args.min_confidence,
                                         on_skip=lambda i, e: on_skip(paths[i], e))
        except ValueError as e:
            raise UsageError(f"--self-train: {e}") from None
        state = load_checkpoint(report.checkpoint)
    state["model"] = {k: v.detach().cpu().contiguous() for k, v in trained.backend.model.state_dict().items()}
    used, note = report.inputs - report.unreadable, f" ({report.unreadable} unreadable, skipped)" if report.unreadable else ""
    what = f"{used} {reader.frontend.media.name} inputs, self-trained {report.steps} steps on {report.kept} of its readings"
    save_checkpoint(args.out, inference_state(state, adapted_on=what))
    print(f"wrote {args.out}: {report.layers} BatchNorm layers adapted to {used} inputs{note}; self-trained {report.steps} steps "
          f"on {report.kept} of its readings ({report.left_out} below --min-confidence or empty, left out), adapted again")
    return 0


if __name__ == "__main__":
    run_cli(main)
