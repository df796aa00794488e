#!/usr/bin/env python
"""Grow a crnn_compact checkpoint into a crnn (8.3M) that reads exactly as it does, to train on.

    python tools/widen.py --checkpoint crnn_ocr/weights/english_crnn_compact.pt --out runs/english_wide.pt
    python tools/train.py --init-from runs/english_wide.pt --data ... --val ...

Each unit of the small model becomes two of the large one (Net2WiderNet; ``crnn_ocr.widen``): the
written model's log-probabilities equal the small one's (checked here on random inputs), and
training from it starts where the small model stands instead of from scratch. The checkpoint keeps
the alphabet, kind and front-end; ``widened_from`` names the source.
"""

from __future__ import annotations

import os

from crnn_ocr.cli import ArgumentParser, existing_file, run_cli


def parse_args(argv: list[str] | None):
    p = ArgumentParser(prog="widen.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a crnn_compact checkpoint (text, score or speech)")
    p.add_argument("--out", required=True, help="the crnn checkpoint to write")
    p.add_argument("--noise", type=float, default=0.1,
                   help="each unit's outgoing weights split 1/2 +- e between its copies, |e| <= noise (default 0.1)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if not 0 <= args.noise < 0.5:
        p.error(f"--noise must be in [0, 0.5), got {args.noise}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    existing_file(args.checkpoint, "checkpoint")
    import torch

    from crnn_ocr.checkpoint import inference_state, load_checkpoint, save_checkpoint
    from crnn_ocr.torch_backend import load_model
    from crnn_ocr.widen import widen

    small, _, _, _ = load_model(args.checkpoint)
    if small.config.arch != "crnn_compact":
        raise ValueError(f"{args.checkpoint}: is a {small.config.arch} model; only crnn_compact can be widened")
    large = widen(small, noise=args.noise, seed=args.seed).eval()
    height, channels = small.config.height, small.config.in_channels
    x = torch.rand(2, channels, height, 8 * height, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        gap = (small(x).log_softmax(-1) - large(x).log_softmax(-1)).abs().max().item()
    if gap > 1e-3:  # a bug, not bad input
        raise RuntimeError(f"the widened model reads differently (log-probabilities differ by {gap:.2e})")
    state = inference_state(load_checkpoint(args.checkpoint), widened_from=os.path.basename(args.checkpoint))
    state["model"], state["model_config"] = large.state_dict(), large.config.to_dict()
    save_checkpoint(args.out, state)
    small_n, large_n = (sum(p.numel() for p in m.parameters()) for m in (small, large))
    print(f"wrote {args.out}: crnn_compact ({small_n / 1e6:.2f}M parameters) -> crnn ({large_n / 1e6:.2f}M); "
          f"log-probabilities within {gap:.1e} of the source's")
    return 0


if __name__ == "__main__":
    run_cli(main)
