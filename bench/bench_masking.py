"""What masking the batch padding costs (CRNN.forward with ``widths``), and whether it changes accuracy.

    OMP_NUM_THREADS=2 .venv/bin/python bench/bench_masking.py [--rounds 5] [--accuracy]

1. Speed, interleaved in one process (rounds alternate masked / unmasked on the same batches, so
   load drifts hit both): training steps (forward + CTC + backward + AdamW) of the shipped
   ``crnn_compact`` at its 1.5x width scale on width-bucketed batches of 64 synthetic words (as
   the trainer draws them) and on unbucketed batches (widths mixed at random: the most
   padding); inference forward passes of batches of 32 on both.
2. ``--accuracy``: the README's fine-tuning demo (shipped model, 300 steps on 5,000 dot-matrix
   words, seed 0) trained with and without masking, validated on the same 300 held-out words
   (read alone, so the reading itself is the same in both).
Run on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from crnn_ocr.data import BucketBatchSampler, LmdbDataset, collate_batch  # noqa: E402
from crnn_ocr.engine.ctc import ctc_loss  # noqa: E402
from crnn_ocr.frontend import ImageFrontend  # noqa: E402
from crnn_ocr.model import output_length, output_lengths  # noqa: E402
from crnn_ocr.pretrained import MODELS  # noqa: E402
from crnn_ocr.torch_backend import load_model  # noqa: E402


def batches(db: str, alphabet, config, width_scale: float, size: int, count: int, bucketed: bool) -> list[dict]:
    ds = LmdbDataset(db, alphabet, ImageFrontend(max_width=400, width_scale=width_scale), augment=False,
                     min_frames_fn=lambda w: int(output_length(w, config)))
    if bucketed:
        order = list(BucketBatchSampler(ds.widths, size, shuffle=True, seed=0, drop_last=True))
    else:
        perm = np.random.default_rng(0).permutation(len(ds))
        order = [perm[i : i + size].tolist() for i in range(0, len(ds) - size + 1, size)]
    return [collate_batch([ds[i] for i in idx]) for idx in order[:count]]


def padding_share(bs: list[dict]) -> float:
    real = sum(int(b["input_widths"].sum()) for b in bs)
    total = sum(b["images"].shape[0] * b["images"].shape[3] for b in bs)
    return 1 - real / total


def time_training(model, bs: list[dict], masked: bool) -> float:
    """images/s of training steps on ``bs``."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    model.train()
    t0 = time.perf_counter()
    for b in bs:
        logits = model(b["images"], b["input_widths"] if masked else None)
        lengths = output_lengths(b["input_widths"], model.config).clamp(max=logits.shape[1])
        loss = ctc_loss(logits, b["targets"], lengths, b["target_lengths"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return sum(len(b["labels"]) for b in bs) / (time.perf_counter() - t0)


@torch.inference_mode()
def time_inference(model, bs: list[dict], masked: bool) -> float:
    model.eval()
    t0 = time.perf_counter()
    for b in bs:
        model(b["images"], b["input_widths"] if masked else None)
    return sum(len(b["labels"]) for b in bs) / (time.perf_counter() - t0)


def speed(args: argparse.Namespace, tmp: str) -> None:
    import crnn_ocr.synth.text as synth_text

    db = os.path.join(tmp, "words")
    synth_text.generate(db, 2000, seed=7, channels=1, plain_ratio=0.25)
    model, alphabet, frontend, _ = load_model(MODELS["english"].path)
    print(f"torch threads {torch.get_num_threads()}, load average at start {os.getloadavg()[0]:.2f}\n")
    print("| pass | batches | padding share | unmasked images/s | masked images/s | masked / unmasked |")
    print("|---|---|---|---|---|---|")
    for what, size, count, fn in [("training step", 64, 6, time_training), ("inference forward", 32, 12, time_inference)]:
        for bucketed in (True, False):
            bs = batches(db, alphabet, model.config, frontend.width_scale, size, count, bucketed)
            fn(model, bs[:1], True), fn(model, bs[:1], False)  # warm-up
            rates = {True: [], False: []}
            for r in range(args.rounds):
                for masked in ((True, False) if r % 2 else (False, True)):
                    rates[masked].append(fn(model, bs, masked))
            un, ma = statistics.median(rates[False]), statistics.median(rates[True])
            kind = "width-bucketed" if bucketed else "mixed widths"
            print(f"| {what} | {count} x {size}, {kind} | {padding_share(bs):.0%} | {un:.1f} | {ma:.1f} | {ma / un:.2f} |",
                  flush=True)


def accuracy(tmp: str) -> None:
    import crnn_ocr.synth.text as synth_text
    from crnn_ocr.engine import TrainConfig, train
    from crnn_ocr.evaluation import evaluate
    from crnn_ocr.recognizer import load_recognizer

    train_db, val_db = os.path.join(tmp, "dots_train"), os.path.join(tmp, "dots_val")
    synth_text.generate(train_db, 5000, seed=0, style="dot-matrix")
    synth_text.generate(val_db, 300, seed=1, style="dot-matrix")
    print("\n| demo fine-tune (300 steps, batch 32) | val word accuracy | CER |")
    print("|---|---|---|")
    for masked in (True, False):
        out = os.path.join(tmp, f"run_{masked}")
        train(TrainConfig(data=[train_db], val=[val_db], init_from=str(MODELS["english"].path), max_steps=300,
                          val_every=300, batch_size=32, lr=5e-4, out_dir=out, progress=False, mask_padding=masked))
        rec = load_recognizer(os.path.join(out, "last.pt"), device="cpu")
        from crnn_ocr.data import iter_lmdb_samples

        result = evaluate(rec, ((str(i), img, label) for i, img, label in iter_lmdb_samples(val_db)), batch_size=1)
        m = result.metrics
        print(f"| {'masked' if masked else 'unmasked'} | {m.word_accuracy:.4f} | {m.cer:.4f} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--accuracy", action="store_true", help="also train the demo fine-tune with and without masking")
    p.add_argument("--no-speed", action="store_true", help="skip the timing (e.g. while another job runs)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_speed:
            speed(args, tmp)
        if args.accuracy:
            accuracy(tmp)


if __name__ == "__main__":
    main()
