"""Training throughput through the real input pipeline vs. the bare model on ready tensors.

    python bench/bench_training.py [--arch crnn] [--steps 15] [--batch-size 64] [--workers 1]

Renders a synthetic LMDB into a temporary folder, then in one process:
1. bare: forward + CTC loss + backward + AdamW step on batches already collated in memory;
2. pipeline: the same steps fed by DataLoader(LmdbDataset(augment=True), BucketBatchSampler,
   collate_batch) — LMDB read, image decode, resize, augmentation, collation.
Prints images/s for both and the ratio (target >= 0.90). Run on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import torch  # noqa: E402

from crnn_ocr.alphabet import Alphabet  # noqa: E402
from crnn_ocr.data import BucketBatchSampler, LmdbDataset, collate_batch  # noqa: E402
from crnn_ocr.engine.ctc import ctc_loss  # noqa: E402
from crnn_ocr.frontend import ImageFrontend  # noqa: E402
from crnn_ocr.model import ModelConfig, build_model, output_length, output_lengths  # noqa: E402


def step_fn(model, optimizer, config):
    def step(batch) -> int:
        logits = model(batch["images"], batch["input_widths"])  # (N, 1, 32, W), (N,) -> (N, T, C)
        lengths = output_lengths(batch["input_widths"], config).clamp(max=logits.shape[1])
        loss = ctc_loss(logits, batch["targets"], lengths, batch["target_lengths"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return len(batch["labels"])

    return step


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default="crnn")
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--samples", type=int, default=3000)
    a = p.parse_args()
    import crnn_ocr.synth.text as synth_text

    alphabet = Alphabet.preset("alphanumeric")
    config = ModelConfig(num_classes=alphabet.num_classes, arch=a.arch)
    with tempfile.TemporaryDirectory() as tmp:
        synth_text.generate(os.path.join(tmp, "db"), a.samples, seed=0)
        ds = LmdbDataset(os.path.join(tmp, "db"), alphabet, ImageFrontend(max_width=400), augment=True,
                         min_frames_fn=lambda w: output_length(w, config))
        sampler = BucketBatchSampler(ds.widths, a.batch_size, shuffle=True, seed=0, drop_last=True)
        loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=collate_batch,
                                             num_workers=a.workers, persistent_workers=a.workers > 0)
        torch.manual_seed(0)
        model = build_model(config).train()
        step = step_fn(model, torch.optim.AdamW(model.parameters(), lr=1e-4), config)

        it = iter(loader)
        ready = [next(it) for _ in range(a.steps)]  # the same batches, collated in advance
        step(ready[0])  # warm-up
        t0 = time.perf_counter()
        n_bare = sum(step(b) for b in ready)
        bare = n_bare / (time.perf_counter() - t0)

        t0 = time.perf_counter()
        n_pipe, it = 0, iter(loader)
        for _ in range(a.steps):
            try:
                batch = next(it)
            except StopIteration:
                it = iter(loader)
                batch = next(it)
            n_pipe += step(batch)
        pipe = n_pipe / (time.perf_counter() - t0)
    print(f"arch {a.arch}, batch {a.batch_size}, {a.steps} steps, {a.workers} workers, torch threads {torch.get_num_threads()}")
    print(f"bare model on ready tensors: {bare:.1f} images/s")
    print(f"real pipeline (LMDB, decode, augment, collate): {pipe:.1f} images/s")
    print(f"ratio: {pipe / bare:.2f}")


if __name__ == "__main__":
    main()
