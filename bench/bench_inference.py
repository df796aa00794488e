"""Inference throughput of the CRNN on CPU: batch 1 and 64, fp32 vs channels_last vs bf16.

    python bench/bench_inference.py [--arch crnn crnn_compact] [--seconds 3]

Times the model forward (N, 1, 32, 100) -> (N, 26, 37) under torch.inference_mode and prints
images/s per setting, plus the speed-up over fp32 contiguous measured in the same process.
bf16 agreement: the share of samples whose greedy best path is identical to fp32's, on
random-weight models (a trained model is checked in BENCHMARKS.md when one exists).
Run on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import time

import torch

from crnn_ocr.model import ModelConfig, build_model


def rate(fn, batch: int, seconds: float) -> float:
    fn()  # warm-up
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += batch
    return n / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--arch", nargs="+", default=["crnn", "crnn_compact"])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 64])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--width", type=int, default=100)
    a = p.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, input (N, 1, 32, {a.width})")
    print("| arch | batch | fp32 img/s | channels_last img/s | bf16 img/s | bf16+channels_last img/s | bf16 same best path |")
    print("|---|---|---|---|---|---|---|")
    for arch in a.arch:
        model = build_model(ModelConfig(num_classes=37, arch=arch)).eval()
        for batch in a.batches:
            x = torch.randn(batch, 1, 32, a.width)
            results = {}
            for name, cl, bf16 in [("fp32", False, False), ("cl", True, False), ("bf16", False, True), ("bf16cl", True, True)]:
                m = model.to(memory_format=torch.channels_last) if cl else model.to(memory_format=torch.contiguous_format)
                xi = x.contiguous(memory_format=torch.channels_last) if cl else x

                @torch.inference_mode()
                def run(m=m, xi=xi, bf16=bf16):
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                        return m(xi)

                results[name] = rate(run, batch, a.seconds)
                if name == "fp32":
                    ref = run().argmax(-1)
                if name == "bf16":
                    same = (run().float().argmax(-1) == ref).all(dim=1).float().mean().item()
            base = results["fp32"]
            cells = [f"{results['fp32']:.0f}"] + [f"{results[k]:.0f} ({results[k] / base:.2f}x)" for k in ("cl", "bf16", "bf16cl")]
            print(f"| {arch} | {batch} | " + " | ".join(cells) + f" | {same:.0%} |", flush=True)


if __name__ == "__main__":
    main()
