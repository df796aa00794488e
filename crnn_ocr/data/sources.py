"""Training sources: what a ``--data`` entry opens as, an LMDB folder or a wing's generator.

    runs/ic15                  -> LmdbDataset (crnn_ocr.data.dataset)
    synth:runs/synth.json      -> words rendered in the DataLoader's workers (crnn_ocr.synth.online)
    staves:runs/staves.json    -> music staves engraved in the DataLoader's workers (crnn_ocr.synth.online_music)

A prefix names a source kind; ``SOURCE_MODULES`` names the module that registers it when imported
(as ``crnn_ocr.tasks`` finds a wing's task), so no core module imports a wing. A source is a
dataset the trainer mixes by ratio like an LMDB (``TrainingSource``); one whose samples' widths
are only known per epoch (synthetic words and engravings are drawn afresh each epoch) gives them through
``epoch_widths`` for ``BucketBatchSampler``'s ``width_fns``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from crnn_ocr.alphabet import Alphabet
from crnn_ocr.data.dataset import LmdbDataset
from crnn_ocr.frontend import Frontend

SOURCE_MODULES = {"synth": "crnn_ocr.synth.online", "staves": "crnn_ocr.synth.online_music"}
"""``--data`` prefix -> the module that registers the source kind when imported."""

_OPENERS: dict[str, Callable[..., Any]] = {}


class TrainingSource(Protocol):
    """What the trainer reads from a training source (``LmdbDataset`` is the reference).

    ``widths``: each sample's input width for width buckets, fixed for the run; a source whose
    widths change every epoch also has ``epoch_widths(epoch, indices) -> widths`` (then
    ``widths`` is a placeholder the sampler replaces).
    """

    widths: np.ndarray | None

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> dict | None: ...

    def set_epoch(self, epoch: int) -> None: ...

    def summary(self) -> str: ...


def register_source(prefix: str, opener: Callable[..., Any]) -> None:
    """Make ``prefix:ARG`` entries open as ``opener(ARG, alphabet, frontend, augment=, seed=, **task_options)``."""
    _OPENERS[prefix] = opener


def split_source(entry: str | os.PathLike) -> tuple[str | None, str]:
    """``"synth:a.json"`` -> ``("synth", "a.json")``; an LMDB path (no known prefix) -> ``(None, path)``."""
    text = os.fspath(entry)
    prefix, sep, rest = text.partition(":")
    if sep and (prefix in SOURCE_MODULES or prefix in _OPENERS):
        return prefix, rest
    return None, text


def open_training_source(
    entry: str | os.PathLike, alphabet: Alphabet, frontend: Frontend, *, augment: Any = False, seed: int = 0,
    **options: Any,
) -> TrainingSource:
    """The dataset of one ``--data`` entry: an ``LmdbDataset``, or the registered source of its
    prefix; ``options`` are the task's (``Task.dataset_options``). ``ValueError`` naming a bad one."""
    prefix, arg = split_source(entry)
    if prefix is None:
        return LmdbDataset(arg, alphabet, frontend, augment=augment, seed=seed, **options)
    if prefix not in _OPENERS:
        importlib.import_module(SOURCE_MODULES[prefix])  # registers it
    return _OPENERS[prefix](arg, alphabet, frontend, augment=augment, seed=seed, **options)
