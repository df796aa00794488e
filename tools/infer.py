#!/usr/bin/env python
"""Read words from images with a trained checkpoint or an ONNX export.

    python tools/infer.py --image word.png                                   # the shipped English model
    python tools/infer.py --image word.png --checkpoint runs/crnn/best.pt
    python tools/infer.py --image word.png --checkpoint runs/crnn/best.onnx   # onnxruntime, no torch
    python tools/infer.py --image crops/ 'scans/*.jpg' --checkpoint best.pt --lexicon words.txt --json

    python tools/infer.py --audio clip.wav 'clips/*.flac' --checkpoint speech.pt [--lexicon digits.txt]

Prints one line per image: path, text, confidence (tab-separated), or JSON lines with --json.
With --audio (a speech checkpoint): path, transcript, confidence and each word with its start
and end in seconds, ``word@0.32-0.71`` (tab-separated).
Many files are decoded by worker threads and batched by width; a progress bar and the
images/s go to stderr. An image wider than the model's maximum width (a text line) is read
at full resolution in overlapping windows, as one reading.

Exit status: 0 every file was read; 1 some files could not be read (each is named on stderr
in one line, every other file's line is still printed); 2 bad arguments or a missing
model, file or extra (one line on stderr, nothing read).
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from crnn_ocr.cli import ArgumentParser, UsageError, expand_inputs, model_files, run_cli  # noqa: E402
from crnn_ocr.extras import require  # noqa: E402
from crnn_ocr.pretrained import MODELS  # noqa: E402

PROGRESS_MIN_FILES = 64  # --progress auto: a bar for this many files or more


def parse_args(argv: list[str] | None):
    p = ArgumentParser(prog="infer.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--image", nargs="+", help="image files, folders or glob patterns")
    p.add_argument("--audio", nargs="+", help="audio files (WAV, FLAC, OGG, ...), folders or glob patterns; a speech checkpoint")
    p.add_argument("--checkpoint", help="a crnn_ocr checkpoint (.pt) or an ONNX export (.onnx, tools/export.py); "
                   "default: the shipped model for the input (crnn_ocr/pretrained.py)")
    p.add_argument("--model", choices=sorted(MODELS), help="a model that ships with crnn_ocr, by name "
                   "(crnn_ocr/pretrained.py); without this or --checkpoint: the input's (english for --image, "
                   "score with --musicxml/--midi, spoken_digits for --audio)")
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"],
                   help="auto: onnx for a .onnx file, else torch")
    p.add_argument("--lexicon", help="word list, one per line: output is constrained to these words")
    p.add_argument("--lexicon-mode", default="auto", choices=["auto", "score", "candidates", "trie"])
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
    p.add_argument("--device", help="cpu, cuda (default: CUDA if present; torch backend)")
    args = p.parse_args(argv)
    if (args.image is None) == (args.audio is None):
        p.error("give --image or --audio (one of them)")
    for name in ("beam", "batch_size", "threads", "workers"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.audio is not None:
        return infer_audio(args)
    from crnn_ocr.preprocessing import IMAGE_EXTENSIONS

    paths = expand_inputs(args.image, IMAGE_EXTENSIONS)
    # no --checkpoint: the shipped model, as ONNX when onnxruntime can run it (no torch import: fast start)
    onnx_ok = args.backend != "torch" and args.precision == "fp32" and args.device in (None, "cpu")
    kind = "score" if args.musicxml or args.midi else "text"  # what a reader of staves or words expects
    args.checkpoint = model_files(args.checkpoint, args.lexicon, kind, model=args.model, prefer_onnx=onnx_ok)

    from crnn_ocr.recognizer import load_recognizer  # imports torch only for the torch backend

    backend = args.backend
    if backend == "auto":
        backend = "onnx" if args.checkpoint.lower().endswith(".onnx") else "torch"
    if backend == "onnx":
        require("onnxruntime", "--backend onnx (an .onnx model)")
    targets = visualize_targets(args.visualize, paths) if args.visualize else {}
    if backend == "torch" and args.threads:
        import torch

        torch.set_num_threads(args.threads)
    rec = load_recognizer(
        args.checkpoint, backend=backend, device=args.device, threads=args.threads if backend == "onnx" else None,
        precision=args.precision, beam_width=args.beam, lexicon=args.lexicon, lexicon_mode=args.lexicon_mode,
        max_edit_distance=args.max_edit_distance,
    )
    if rec.frontend.media.name != "image":
        raise UsageError(f"{args.checkpoint}: is a {rec.kind} model, it cannot read images")
    if (args.musicxml or args.midi) and (rec.kind != "score" or len(paths) != 1):
        raise UsageError(f"--musicxml/--midi: need a score checkpoint (train.py --kind score) and one --image; "
                         f"got a {rec.kind} model and {len(paths)} images")

    show_progress = args.progress == "on" or (args.progress == "auto" and len(paths) >= PROGRESS_MIN_FILES)
    bar = None
    if show_progress:
        from tqdm import tqdm

        bar = tqdm(total=len(paths), unit="img", file=sys.stderr, dynamic_ncols=True)
    if args.json:
        import json
    kept = []  # (path, prepared image, result) for --visualize
    failed = FailedFiles()
    start = time.perf_counter()
    out = sys.stdout
    for path, img, res in rec.read_files(paths, batch_size=args.batch_size, workers=args.workers, on_error=failed):
        if args.json:
            out.write(json.dumps({"path": path, "text": res.text, "confidence": round(res.confidence, 6),
                                  "score": round(res.score, 6), "token_ids": list(res.token_ids),
                                  "spans": [list(s) for s in res.spans]}, ensure_ascii=False) + "\n")
        else:
            out.write(f"{path}\t{res.text}\t{res.confidence:.4f}\n")
        if args.visualize:
            kept.append((path, img, res))
        read_text = res.text
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
        elapsed = time.perf_counter() - start
        sys.stderr.write(f"infer.py: read {len(paths) - failed.count} images in {elapsed:.2f} s "
                         f"({(len(paths) - failed.count) / elapsed:.1f} images/s)\n")
    if args.visualize:
        visualize(rec, kept, targets)
    if failed.count:
        return failed.finish(len(paths))
    if args.musicxml or args.midi:
        return write_score_files(read_text, paths[0], args.musicxml, args.midi)
    return 0


class FailedFiles:
    """``on_error`` for ``read_files``: names each unreadable file on stderr at once, counts them."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, path, message: str) -> None:
        self.count += 1
        sys.stderr.write(f"infer.py: skipped {message if str(path) in message else f'{path}: {message}'}\n")

    def finish(self, total: int) -> int:
        if total > 1:
            sys.stderr.write(f"infer.py: {self.count} of {total} files could not be read\n")
        return 1


def write_score_files(tokens: str, path: str, musicxml: str | None, midi: str | None) -> int:
    """Write a read semantic sequence as MusicXML/MIDI; an invalid one is reported (exit 1)."""
    from crnn_ocr.music import InvalidSequence, write_score

    try:
        write_score(tokens, musicxml=musicxml, midi=midi)
    except InvalidSequence as e:
        sys.stderr.write(f"infer.py: {path}: the reading is not valid music, no score written:\n")
        for issue in e.issues:
            sys.stderr.write(f"  {issue}\n")
        return 1
    except ImportError as e:
        raise UsageError(f"--musicxml/--midi need music21 (pip install 'crnn_ocr[music]'): {e}") from None
    for target in (musicxml, midi):
        if target:
            sys.stderr.write(f"infer.py: wrote {target}\n")
    return 0


VISUALIZE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def visualize_targets(target: str, paths: list[str]) -> dict[str, str]:
    """Where --visualize draws each input, decided before any work (one-line UsageError if it cannot).

    An image file name: that file for one input; for several, the name with the input's index
    (``spans_0001.png``, in input order). Anything else is a folder (made if missing), with one
    PNG per input named after it (``word.png``; the index is added when two inputs share a name).
    """
    stem, ext = os.path.splitext(target)
    if ext.lower() in VISUALIZE_EXTENSIONS:
        if os.path.isdir(target):
            raise UsageError(f"--visualize {target}: is a folder, but its name ends like an image file")
        if os.path.dirname(target) and not os.path.isdir(os.path.dirname(target)):
            raise UsageError(f"--visualize {target}: folder {os.path.dirname(target)} does not exist")
        if len(paths) == 1:
            return {paths[0]: target}
        digits = max(4, len(str(len(paths))))
        return {p: f"{stem}_{i:0{digits}d}{ext}" for i, p in enumerate(paths, 1)}
    if ext and not os.path.isdir(target):
        raise UsageError(f"--visualize {target}: not an image file name ({', '.join(VISUALIZE_EXTENSIONS)}) nor a folder")
    if os.path.exists(target) and not os.path.isdir(target):
        raise UsageError(f"--visualize {target}: is a file, expected a folder or an image file name")
    os.makedirs(target, exist_ok=True)
    names = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    out = {}
    for i, (p, name) in enumerate(zip(paths, names), 1):
        unique = names.count(name) == 1
        out[p] = os.path.join(target, f"{name}.png" if unique else f"{name}_{i:04d}.png")
    return out


def visualize(rec, results: list, targets: dict[str, str]) -> None:
    """Draw each result's symbols over their glyphs into its file in ``targets``."""
    import cv2

    from crnn_ocr.visualize import draw_spans

    for path, img, res in results:
        symbols = [rec.alphabet.symbol_of(i) for i in res.token_ids]
        canvas = draw_spans(img, res, rec.output_length(img.shape[1]), symbols)
        if not cv2.imwrite(targets[path], cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR)):
            raise UsageError(f"--visualize: could not write {targets[path]}")


def infer_audio(args) -> int:
    """--audio: transcribe each file with a speech checkpoint; one line (or JSON object) per file."""
    from crnn_ocr.speech.audio import AUDIO_EXTENSIONS

    paths = expand_inputs(args.audio, AUDIO_EXTENSIONS, "audio")
    args.checkpoint = model_files(args.checkpoint, args.lexicon, "speech", model=args.model)
    if args.visualize:
        raise UsageError("--visualize draws image spans; it does not apply to --audio")
    require("soundfile", "--audio")
    require("scipy", "--audio")
    backend = args.backend if args.backend != "auto" else ("onnx" if args.checkpoint.lower().endswith(".onnx") else "torch")
    from crnn_ocr.recognizer import load_recognizer
    from crnn_ocr.speech import transcript, transcript_json, transcript_line

    if backend == "onnx":  # onnxruntime + the numpy log-mel front-end: torch is never imported
        require("onnxruntime", "--backend onnx (an .onnx model)")
    elif args.threads:
        import torch

        torch.set_num_threads(args.threads)
    rec = load_recognizer(args.checkpoint, backend=backend, device=args.device, threads=args.threads if backend == "onnx" else None,
                          precision=args.precision, beam_width=args.beam, lexicon=args.lexicon, lexicon_mode=args.lexicon_mode,
                          max_edit_distance=args.max_edit_distance)
    if rec.frontend.media.name != "audio":
        raise UsageError(f"{args.checkpoint}: is a {rec.kind} model, it cannot read audio (use --image)")
    show_progress = args.progress == "on" or (args.progress == "auto" and len(paths) >= PROGRESS_MIN_FILES)
    bar = None
    if show_progress:
        from tqdm import tqdm

        bar = tqdm(total=len(paths), unit="file", file=sys.stderr, dynamic_ncols=True)
    failed = FailedFiles()
    for path, features, res in rec.read_files(paths, batch_size=args.batch_size, workers=args.workers, on_error=failed):
        t = transcript(rec, res, features)
        sys.stdout.write((transcript_json(path, t) if args.json else transcript_line(path, t)) + "\n")
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return failed.finish(len(paths)) if failed.count else 0


if __name__ == "__main__":
    run_cli(main)
