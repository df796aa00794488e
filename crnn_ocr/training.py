"""Old home of the trainer, kept so ``from crnn_ocr.training import ...`` goes on working: the
trainer is ``crnn_ocr.engine`` (``TrainConfig``, ``train``, ``resolve_start``, ``ctc_loss``, ...)."""

from __future__ import annotations

from crnn_ocr.engine.config import TrainConfig
from crnn_ocr.engine.ctc import ctc_loss, greedy_ids
from crnn_ocr.engine.ctc import validate as evaluate_loader
from crnn_ocr.engine.loop import Interrupted, TrainingStopped, TrainResult, train
from crnn_ocr.engine.runtime import choose_device
from crnn_ocr.engine.start import resize_output_layer

__all__ = [
    "Interrupted",
    "TrainConfig",
    "TrainResult",
    "TrainingStopped",
    "choose_device",
    "ctc_loss",
    "evaluate_loader",
    "greedy_ids",
    "resize_output_layer",
    "train",
]
