"""What a model is trained to output: a name table of tasks, as ``crnn_ocr.frontend`` has of front-ends.

    kind (checkpoint ``kind``)   task        front-end
    text, score                  ctc         image     a label sequence per input (CTC)
    speech                       ctc         audio
    classify                     classify    audio     one class per clip (softmax cross-entropy)
    tag                          tag         audio     several classes per clip (binary cross-entropy)

The trainer (``crnn_ocr.engine``) asks the run's task for everything that differs between them:
the label set (an ``Alphabet``, or a class list), the model config (whose model
``crnn_ocr.model.build_model`` builds), the dataset options, the loss, the
batch accuracy and validation (``Task``). The ``ctc`` task is the engine's own
(``crnn_ocr.engine.ctc``); a wing provides the others: ``TASK_MODULES`` names the module that
registers a task when imported (what entry points would declare for a plugin), so no core module
imports a wing. This module needs neither torch nor numpy: the readers (``torch_backend``,
``onnx_backend``) use ``check_ctc_model`` to refuse a model of another task with one line.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Kind:
    """A checkpoint ``kind``: the task its model is trained for and the front-end kind it reads."""

    name: str
    task: str
    frontend: str  # "image" or "audio" (crnn_ocr.frontend kinds)


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("text", "ctc", "image"),
    Kind("score", "ctc", "image"),
    Kind("speech", "ctc", "audio"),
    Kind("classify", "classify", "audio"),
    Kind("tag", "tag", "audio"),
)}

TASK_MODULES = {"ctc": "crnn_ocr.engine.ctc", "classify": "crnn_ocr.classify.task", "tag": "crnn_ocr.classify.task"}
"""Task name -> the module that registers it when imported."""

_TASKS: dict[str, Any] = {}


def kind_info(kind: str) -> Kind:
    """The ``Kind`` of a checkpoint kind; ``ValueError`` naming the known ones."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}")
    return KINDS[kind]


def task_of_kind(kind: str | None) -> str:
    """The task name of a checkpoint kind (None, or a kind from a newer version: ``ctc``)."""
    info = KINDS.get(kind or "text")
    return info.task if info is not None else "ctc"


@dataclass(frozen=True)
class Validation:
    """One validation pass as the trainer records it.

    ``row``: log.csv cells (column -> formatted value); ``line``: what the progress bar prints
    after ``step N:``; ``best``: the number best.pt follows (higher is better); ``state``: plain
    data the task keeps in the checkpoint (a tagger's thresholds); ``files``: name -> text written
    into the run folder beside best.pt (a confusion matrix).
    """

    row: dict[str, str]
    line: str
    best: float
    state: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


class Task(Protocol):
    """What the trainer asks a task; ``crnn_ocr.engine.ctc.CTCTask`` is the reference.

    ``run`` arguments are the loop's ``Run`` (its ``model``, ``core``, ``spec``, ``cfg``,
    ``device`` and ``autocast()``); ``spec`` is the ``RunSpec`` (labels under ``alphabet``).
    """

    name: str
    labels_file: str  # the label set written into the run folder: "alphabet.txt", "classes.txt"
    log_columns: list[str]  # log.csv's columns
    best_name: str  # what best.pt follows, as train.py says it: "val word accuracy"
    state_keys: tuple[str, ...]  # checkpoint keys of the task's own plain data ("thresholds")

    def labels_from_dict(self, d: Mapping[str, Any]) -> Any:
        """The label set stored under a checkpoint's ``alphabet``."""
        ...

    def choose_labels(self, config: Any, resumed: dict | None, init: dict | None) -> Any:
        ...

    def choose_model_config(self, config: Any, labels: Any, frontend: Any, resumed: dict | None, init: dict | None) -> Any:
        """The model config of a run; ``frontend`` is the audio front-end, or None for images."""
        ...

    def dataset_options(self, spec: Any) -> dict[str, Any]:
        """Keyword arguments for ``LmdbDataset`` (which samples fit, what a bad label does)."""
        ...

    def sample_weights(self, train_sets: list[Any], config: Any) -> list[float] | None:
        """Per-sample drawing weights over the concatenated training sets (None: the sampler's own)."""
        ...

    def training_loss(self, run: Any, images: Any, batch: dict[str, Any]) -> tuple[Any, Any]:
        """Forward and loss of one batch: (scalar loss, outputs for ``batch_accuracy``)."""
        ...

    def batch_accuracy(self, outputs: Any, batch: dict[str, Any], spec: Any) -> float:
        ...

    def validate(self, model: Any, loader: Any, spec: Any, device: Any, autocast: Any) -> Validation:
        ...


def register_task(task: Any) -> Any:
    """Make ``task`` (an object with the ``Task`` attributes) the one ``get_task(task.name)`` returns."""
    _TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    """The registered task ``name``, importing the module that provides it on first use."""
    if name not in _TASKS and name in TASK_MODULES:
        importlib.import_module(TASK_MODULES[name])  # registers it
    if name not in _TASKS:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(sorted({*_TASKS, *TASK_MODULES}))}")
    return _TASKS[name]


def task_for_kind(kind: str) -> Task:
    """The task that trains models of checkpoint ``kind``."""
    return get_task(kind_info(kind).task)


class WrongTask(ValueError):
    """A model of another task than the reader's: a classifier given to the CTC recognizer, or
    the reverse. ``kind`` and ``task`` say what the model is."""

    def __init__(self, message: str, *, kind: str, task: str) -> None:
        super().__init__(message)
        self.kind, self.task = kind, task


def check_ctc_model(kind: str | None, source: str | os.PathLike) -> None:
    """``WrongTask`` when a checkpoint or export of ``kind`` is not a CTC model."""
    task = task_of_kind(kind)
    if task != "ctc":
        raise WrongTask(f"{os.fspath(source)}: is a {kind} model (a classifier, not a CTC recognizer): read it with "
                        "crnn_ocr.classify.load_classifier or tools/infer.py", kind=str(kind), task=task)
