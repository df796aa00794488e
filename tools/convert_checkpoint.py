#!/usr/bin/env python
"""Convert a deep-text-recognition-benchmark None-VGG-BiLSTM-CTC checkpoint (EasyOCR's english_g2) to crnn_ocr.

    python tools/convert_checkpoint.py --pth english_g2.pth --out english_g2.pt            # --preset english_g2
    python tools/convert_checkpoint.py --pth best_accuracy.pth --out mine.pt --height 32 \\
        --characters 0123456789abcdefghijklmnopqrstuvwxyz --ignore-case
    python tools/infer.py --checkpoint english_g2.pt --image word.png

The .pth is read with torch.load(weights_only=True): a file holding anything but tensors is refused.
Sizes come from the tensor shapes; the alphabet is the model's `character` string (id 1 = its first).
"""

from __future__ import annotations

from crnn_ocr.cli import ArgumentParser, existing_file, run_cli

PRESETS = ("english_g2",)  # crnn_ocr.deploy.convert.DTRB_PRESETS, named here so --help needs no torch


def parse_args(argv: list[str] | None):
    p = ArgumentParser(prog="convert_checkpoint.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--pth", required=True, help="the DTRB / EasyOCR state dict (.pth)")
    p.add_argument("--out", required=True, help="crnn_ocr checkpoint to write (.pt)")
    chars = p.add_mutually_exclusive_group()
    chars.add_argument("--preset", default="english_g2", choices=PRESETS,
                       help="EasyOCR model whose character set and height to use (default english_g2)")
    chars.add_argument("--characters", help="the model's character string, in id order (blank excluded)")
    chars.add_argument("--characters-file", help="a file holding that string on one line, or one symbol per line")
    p.add_argument("--height", type=int, help="input height the model was trained at (default: the preset's, 64)")
    p.add_argument("--ignore-case", action="store_true", help="the model was trained case-insensitively")
    args = p.parse_args(argv)
    if args.height is not None and args.height < 32:
        p.error(f"--height must be at least 32, got {args.height}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    existing_file(args.pth, "checkpoint")
    from crnn_ocr.deploy.convert import ConvertConfig, convert_dtrb_checkpoint, read_characters_file  # imports torch

    characters = read_characters_file(existing_file(args.characters_file, "characters file")) if args.characters_file \
        else args.characters
    cfg = convert_dtrb_checkpoint(ConvertConfig(pth=args.pth, out=args.out, characters=characters, preset=args.preset,
                                                height=args.height, ignore_case=args.ignore_case))
    print(f"wrote {args.out}: arch {cfg['arch']}, {cfg['num_classes'] - 1} characters + blank, height {cfg['height']}, "
          f"{cfg['in_channels']} channel(s), feature channels {cfg['feature_channels']}, hidden {cfg['hidden_size']}")
    return 0


if __name__ == "__main__":
    run_cli(main)
