"""The trainer's CTC: the loss, greedy ids of a batch, validation over a loader, and the ``ctc`` task.

Logits are ``(N, T, C)`` with the blank at class 0 (``crnn_ocr.alphabet.BLANK``). The best-path
collapse is the decoder's (``crnn_ocr.decoding.ctc.collapse_path``), so training-time accuracy and
reading agree on what a path spells; scores are ``crnn_ocr.metrics.alphabet_metrics``, as
``crnn_ocr.evaluation`` computes them. ``CTCTask`` is what the loop asks (``crnn_ocr.tasks``):
the task of text, score and speech models.
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
from crnn_ocr.engine.log import COLUMNS
from crnn_ocr.engine.start import choose_alphabet, choose_model_config
from crnn_ocr.metrics import alphabet_metrics
from crnn_ocr.model import ModelConfig, output_length, output_lengths
from crnn_ocr.tasks import Validation, register_task


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


class CTCTask:
    """The ``ctc`` task (``crnn_ocr.tasks``): text, music staves and speech. A label is a
    sequence of an ``Alphabet``'s symbols, the model a ``CRNN`` giving (N, T, K) logits, the loss
    CTC, the batch accuracy greedy best-path exact matches, validation ``validate``; best.pt
    follows the validation word accuracy."""

    name = "ctc"
    labels_file = "alphabet.txt"
    log_columns = list(COLUMNS)
    best_name = "val word accuracy"
    state_keys: tuple[str, ...] = ()

    def labels_from_dict(self, d: dict[str, Any]) -> Alphabet:
        return Alphabet.from_dict(d)

    def choose_labels(self, config, resumed: dict | None, init: dict | None) -> Alphabet:
        return choose_alphabet(config, resumed, init)

    def choose_model_config(self, config, labels: Alphabet, frontend, resumed: dict | None, init: dict | None) -> ModelConfig:
        return choose_model_config(config, labels, frontend, resumed, init)

    def dataset_options(self, spec) -> dict[str, Any]:
        """Samples whose label needs more CTC frames than their width gives are skipped (``too_long``)."""

        def min_frames(width: int) -> int:
            return int(output_length(width, spec.model_config))

        return {"min_frames_fn": min_frames}

    def sample_weights(self, train_sets: list, config) -> None:
        return None

    def training_loss(self, run, images: torch.Tensor, batch: dict[str, Any]) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """CTC loss of a batch -> (loss, (logits (N, T, K), frames per sample (N,)))."""
        targets = batch["targets"].to(run.device)
        target_lengths = batch["target_lengths"].to(run.device)
        with run.autocast():  # the padding is masked: each image trains as it is read alone
            logits = run.model(images, batch["input_widths"] if run.cfg.mask_padding else None)  # (N, C, H, W), (N,) -> (N, T, K)
        input_lengths = output_lengths(batch["input_widths"], run.spec.model_config).clamp(max=logits.shape[1]).to(run.device)
        return ctc_loss(logits, targets, input_lengths, target_lengths), (logits, input_lengths)

    def batch_accuracy(self, outputs: tuple[torch.Tensor, torch.Tensor], batch: dict[str, Any], spec) -> float:
        """Share of the batch whose greedy best path spells its label exactly."""
        logits, input_lengths = outputs
        pred = greedy_ids(logits.detach(), input_lengths)
        refs = [spec.alphabet.encode(lbl) for lbl in batch["labels"]]
        return sum(p == r for p, r in zip(pred, refs)) / len(refs)

    def validate(self, model: nn.Module, loader, spec, device: torch.device, autocast) -> Validation:
        m = validate(model, loader, spec.alphabet, spec.model_config, device, autocast)
        return Validation(
            row={"val_loss": f"{m['val_loss']:.5f}", "val_acc": f"{m['val_acc']:.4f}", "val_cer": f"{m['val_cer']:.4f}"},
            line=f"val loss {m['val_loss']:.4f}, word accuracy {m['val_acc']:.4f}, CER {m['val_cer']:.4f} ({m['count']} samples)",
            best=m["val_acc"],
        )


register_task(CTCTask())
