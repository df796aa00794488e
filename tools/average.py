#!/usr/bin/env python
"""Average the weights of checkpoints of one model (a "model soup", fairseq's average_checkpoints).

    python tools/average.py --checkpoints runs/a/best.pt runs/a/last.pt runs/b/best.pt --out runs/soup.pt
    python tools/average.py --checkpoints x.pt y.pt --weights 0.7 0.3 --out runs/mix.pt

The checkpoints must share kind, architecture, alphabet and front-end: fine-tuned from one start,
their weights lie in one basin and their mean reads at least as well as a typical member, often
better (Wortsman et al. 2022). Floating-point tensors (weights and BatchNorm statistics) are
averaged; integer ones (BatchNorm's batch count) come from the first checkpoint. The written file
holds what reading needs, like ``export.py --format pt``, with ``averaged_from`` naming the sources.
"""

from __future__ import annotations

import os

from crnn_ocr.cli import ArgumentParser, existing_file, run_cli


def parse_args(argv: list[str] | None):
    p = ArgumentParser(prog="average.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoints", nargs="+", required=True, help="two or more checkpoints of the same model")
    p.add_argument("--weights", nargs="+", type=float, help="one non-negative weight per checkpoint (default: equal)")
    p.add_argument("--out", required=True, help="the averaged checkpoint to write")
    args = p.parse_args(argv)
    if len(args.checkpoints) < 2:
        p.error(f"--checkpoints: give two or more, got {len(args.checkpoints)}")
    if args.weights is not None:
        if len(args.weights) != len(args.checkpoints):
            p.error(f"--weights: {len(args.weights)} weights for {len(args.checkpoints)} checkpoints")
        if any(w < 0 for w in args.weights) or sum(args.weights) <= 0:
            p.error(f"--weights must be non-negative with a positive sum, got {args.weights}")
    return args


def average_states(states: list[dict], weights: list[float], names: list[str]) -> dict:
    """The first state with its ``model`` replaced by the weighted mean of all ``model`` s;
    ``ValueError`` naming the checkpoint that does not match the first."""
    import torch

    first = states[0]
    for state, name in zip(states[1:], names[1:]):
        for key in ("kind", "model_config", "alphabet", "frontend"):
            if state.get(key) != first.get(key):
                raise ValueError(f"{name}: its {key} differs from {names[0]}'s; only checkpoints of one model can be averaged")
        if state["model"].keys() != first["model"].keys():
            raise ValueError(f"{name}: its tensors differ from {names[0]}'s")
    total = float(sum(weights))
    model = {}
    for k, v in first["model"].items():
        if v.is_floating_point():
            model[k] = sum(s["model"][k].to(torch.float64) * (w / total) for s, w in zip(states, weights)).to(v.dtype)
        else:
            model[k] = v.clone()
    return {**first, "model": model}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for path in args.checkpoints:
        existing_file(path, "checkpoint")
    from crnn_ocr.checkpoint import inference_state, load_checkpoint, save_checkpoint

    states = [load_checkpoint(p) for p in args.checkpoints]
    weights = args.weights or [1.0] * len(states)
    averaged = average_states(states, weights, args.checkpoints)
    sources = [f"{os.path.basename(os.path.dirname(p)) or '.'}/{os.path.basename(p)}" for p in args.checkpoints]
    save_checkpoint(args.out, inference_state(averaged, averaged_from=sources))
    print(f"wrote {args.out}: the {'weighted ' if args.weights else ''}mean of {len(states)} checkpoints' weights")
    return 0


if __name__ == "__main__":
    run_cli(main)
