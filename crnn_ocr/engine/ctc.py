"""The trainer's CTC: the loss, greedy ids of a batch, and validation over a loader.

Logits are ``(N, T, C)`` with the blank at class 0 (``crnn_ocr.alphabet.BLANK``). The best-path
collapse is the decoder's (``crnn_ocr.decoding.ctc.collapse_path``), so training-time accuracy and
reading agree on what a path spells; scores are ``crnn_ocr.metrics.alphabet_metrics``, as
``crnn_ocr.evaluation`` computes them.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from crnn_ocr.alphabet import BLANK, Alphabet
from crnn_ocr.decoding.ctc import collapse_path
from crnn_ocr.metrics import alphabet_metrics
from crnn_ocr.model import ModelConfig, output_lengths


def ctc_loss(logits: torch.Tensor, targets: torch.Tensor, input_lengths: torch.Tensor, target_lengths: torch.Tensor) -> torch.Tensor:
    """Mean CTC loss (per target symbol, as torch's ``reduction='mean'``) from logits (N, T, C)."""
    log_probs = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)  # (N, T, C) -> (T, N, C)
    return F.ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=BLANK, reduction="mean", zero_infinity=True)


def greedy_ids(logits: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
    """Best-path symbol ids of each sample: logits (N, T, C) and frames per sample (N,) -> N id lists."""
    best = logits.argmax(-1).cpu().numpy()  # (N, T)
    return [list(collapse_path(row[:n])[0]) for row, n in zip(best, lengths.tolist())]


@torch.inference_mode()
def validate(model: nn.Module, loader, alphabet: Alphabet, config: ModelConfig, device: torch.device,
             autocast: Callable[[], AbstractContextManager[Any]]) -> dict[str, float]:
    """Validation loss, word accuracy and CER (greedy decoding) over a loader of ``collate_batch`` batches."""
    was_training = model.training
    model.eval()
    preds: list[str] = []
    refs: list[str] = []
    loss_sum, loss_n = 0.0, 0
    for batch in loader:
        if batch is None or len(batch["labels"]) == 0:
            continue
        images = batch["images"].to(device, non_blocking=True)
        with autocast():
            logits = model(images, batch["input_widths"])  # (N, C, H, W), true widths (N,) -> (N, T, K)
        in_len = output_lengths(batch["input_widths"], config).clamp(max=logits.shape[1])
        loss = ctc_loss(logits, batch["targets"].to(device), in_len.to(device), batch["target_lengths"].to(device))
        loss_sum += float(loss) * len(batch["labels"])
        loss_n += len(batch["labels"])
        preds += [alphabet.decode(ids) for ids in greedy_ids(logits.float(), in_len)]
        refs += [alphabet.decode(alphabet.encode(lbl)) for lbl in batch["labels"]]
    model.train(was_training)
    m = alphabet_metrics(preds, refs, alphabet)
    return {"val_loss": loss_sum / max(loss_n, 1), "val_acc": m.word_accuracy, "val_cer": m.cer, "count": m.count}
