#!/usr/bin/env python
"""Export a checkpoint to ONNX (dynamic batch and width), TorchScript or a slim checkpoint for deployment.

    python tools/export.py --checkpoint runs/en/best.pt                  # -> runs/en/best.onnx
    python tools/export.py --checkpoint runs/en/best.pt --int8           # -> runs/en/best.int8.onnx
    python tools/export.py --checkpoint runs/en/best.pt --int8 --calibration crops/  # + int8 convolutions
    python tools/export.py --checkpoint best.pt --format torchscript     # -> best.ts
    python tools/export.py --checkpoint best.pt --format pt              # -> best.infer.pt (no optimizer state)
    python tools/infer.py --checkpoint runs/en/best.onnx --image word.png  # onnxruntime, no torch
    python tools/export.py --checkpoint PP-OCRv6_rec_small.onnx --int8   # a PaddleOCR recognizer, int8 MatMuls
    python tools/export.py --checkpoint best.pt --format pt --recheck 0.85 1.15  # + a second look at unsure words

The alphabet, kind and front-end settings travel inside the file (ONNX metadata ``crnn_ocr``);
the work is ``crnn_ocr.deploy.export``'s.
"""

from __future__ import annotations

import os

from crnn_ocr.cli import ArgumentParser, existing_file, expand_inputs, run_cli


def parse_args(argv: list[str] | None):
    p = ArgumentParser(prog="export.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a crnn_ocr checkpoint (.pt): text, score or speech; or a "
                   "PaddleOCR recognition .onnx file, with --int8 only")
    p.add_argument("--out", help="output file (default: the checkpoint's name with .onnx, .int8.onnx, .ts or .infer.pt)")
    p.add_argument("--format", default="onnx", choices=["onnx", "torchscript", "pt"],
                   help="pt: the checkpoint without optimizer/scheduler state, for shipping")
    p.add_argument("--int8", action="store_true", help="int8 quantization for CPU: LSTM/linear weights (dynamic)")
    p.add_argument("--calibration", nargs="+", help="with --int8: word images (files, folders, globs) to calibrate "
                   "static int8 convolutions on: ~3x faster than fp32; measure the accuracy")
    p.add_argument("--calibration-count", type=int, default=200, help="use at most this many calibration images")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--no-check", action="store_true", help="skip comparing the export with PyTorch")
    p.add_argument("--recheck", nargs="+", type=float, metavar="WIDTH",
                   help="image models: read a word again at these widths (x its own) when its confidence is below "
                        "--recheck-below, and keep what the readings agree on (crnn_ocr.views.Recheck; stored in the file)")
    p.add_argument("--recheck-below", type=float, default=0.5, metavar="P", help="with --recheck: the confidence under "
                   "which a reading is checked (default 0.5)")
    p.add_argument("--no-recheck", action="store_true", help="remove the checkpoint's recheck from the export")
    args = p.parse_args(argv)
    if args.int8 and args.format != "onnx":
        p.error("--int8 applies to --format onnx")
    if args.calibration and not args.int8:
        p.error("--calibration needs --int8")
    if args.calibration_count < 1:
        p.error(f"--calibration-count must be at least 1, got {args.calibration_count}")
    if args.recheck and args.no_recheck:
        p.error("--recheck and --no-recheck exclude each other")
    if args.recheck and not (min(args.recheck) > 0 and 0 < args.recheck_below <= 1):
        p.error(f"--recheck: widths must be positive and --recheck-below in (0, 1], got {' '.join(f'{w:g}' for w in args.recheck)} "
                f"and {args.recheck_below:g}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    existing_file(args.checkpoint, "checkpoint")
    from crnn_ocr.preprocessing import IMAGE_EXTENSIONS

    calibration = expand_inputs(args.calibration, IMAGE_EXTENSIONS)[: args.calibration_count] if args.calibration else []
    from crnn_ocr.deploy.export import ExportConfig, export  # imports torch: after the arguments are checked
    from crnn_ocr.views import Recheck, View

    recheck = Recheck(tuple(View(width=w) for w in args.recheck), args.recheck_below) if args.recheck else (
        False if args.no_recheck else None)
    out = export(ExportConfig(checkpoint=args.checkpoint, out=args.out, format=args.format, int8=args.int8,
                              calibration=tuple(calibration), opset=args.opset, check=not args.no_check, recheck=recheck))
    print(f"wrote {out} ({os.path.getsize(out) / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    run_cli(main)
