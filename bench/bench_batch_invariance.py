"""Does a reading depend on the other images in its batch? Real crops read alone and in batches.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_batch_invariance.py [--count 200]

Crops: the first ``count / 2`` ICDAR 2015 and IIIT5K training crops of ``../shared/data/text``
(varied widths). Each is read alone, then all in batches of 8, 32 and ``count`` (grouped by
width, as ``read_batch`` does), with the shipped English model on PyTorch fp32 and onnxruntime
fp32, and, for comparison, PyTorch without the padding mask (``CRNN.forward`` without
``widths``: what every reader did before). Prints, per backend and batch size, how many texts
change and the largest score difference.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from crnn_ocr.pretrained import MODELS  # noqa: E402
from crnn_ocr.recognizer import Recognizer, load_recognizer  # noqa: E402
from crnn_ocr.torch_backend import TorchBackend  # noqa: E402

SHARED_TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "text"


class UnmaskedBackend(TorchBackend):
    """The reader as it was: the model never learns the images' true widths."""

    def log_probs(self, batch: np.ndarray, widths: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            logits = self.model(torch.from_numpy(batch))
            return torch.log_softmax(logits.float(), dim=-1).numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=200)
    args = p.parse_args()
    paths = sorted((SHARED_TEXT / "ic15_train").glob("*.png"))[: args.count // 2]
    paths += sorted((SHARED_TEXT / "iiit5k_train").glob("*.jpg"))[: args.count - len(paths)]
    readers = {"torch fp32": load_recognizer(MODELS["english"].path, backend="torch", device="cpu")}
    try:
        readers["onnxruntime fp32"] = load_recognizer(MODELS["english"].onnx_path, backend="onnx", threads=1)
    except ImportError:
        pass
    rec = readers["torch fp32"]
    readers["torch fp32, unmasked (before)"] = Recognizer(UnmaskedBackend(rec.backend.model, device="cpu"), rec.frontend, rec.decoder)
    print(f"{len(paths)} crops, widths {min(rec.prepare(q).shape[1] for q in paths)}-"
          f"{max(rec.prepare(q).shape[1] for q in paths)} px after resizing\n")
    print("| reader | batch | texts that change | largest score difference |")
    print("|---|---|---|---|")
    for name, reader in readers.items():
        prepared = [reader.prepare(q) for q in paths]
        alone = [reader.read_prepared([im])[0] for im in prepared]
        for size in (8, 32, len(prepared)):
            batched = reader.read_prepared(prepared, batch_size=size)
            changed = sum(a.text != b.text for a, b in zip(alone, batched))
            diff = max(abs(a.score - b.score) for a, b in zip(alone, batched))
            print(f"| {name} | {size} | {changed} | {diff:.2g} |", flush=True)


if __name__ == "__main__":
    main()
