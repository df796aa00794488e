"""The trainer, one loop for every domain (text, music staves, speech) and task (CTC; a wing's
classifiers: ``crnn_ocr.tasks``).

    config.py   TrainConfig: what ``tools/train.py`` fills from the command line
    start.py    resolve_start(config) -> RunSpec: fresh, --resume or --init-from, and the inherited
                alphabet, architecture and input settings (pure: unit-tested without training)
    inputs.py   build_datasets(config, spec): the training and validation LMDBs; each epoch's loader
    loop.py     train(config): set-up, then the step loop (forward, the task's loss, backward, clip,
                step), logging, validation, checkpoints, signals
    ctc.py      ctc_loss, greedy_ids and validate: the trainer's CTC in one place; CTCTask, the
                ``ctc`` task the loop asks for them
    optim.py    optimizer and learning-rate schedule
    runtime.py  torchrun process group, device, RNG state, SIGINT/SIGTERM
    log.py      log.csv and curves.png
"""

from __future__ import annotations

from crnn_ocr.engine.config import TrainConfig
from crnn_ocr.engine.ctc import ctc_loss, greedy_ids, validate
from crnn_ocr.engine.loop import Interrupted, TrainingStopped, TrainResult, train
from crnn_ocr.engine.start import RunSpec, resize_output_layer, resolve_start

__all__ = [
    "Interrupted",
    "RunSpec",
    "TrainConfig",
    "TrainResult",
    "TrainingStopped",
    "ctc_loss",
    "greedy_ids",
    "resize_output_layer",
    "resolve_start",
    "train",
    "validate",
]
