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
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from crnn_ocr.alphabet import Alphabet, ctc_min_frames
from crnn_ocr.data.dataset import LmdbDataset
from crnn_ocr.frontend import Frontend
from crnn_ocr.preprocessing import DEFAULT_MIN_WIDTH, image_to_tensor, resize_to_height

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


def read_config(prefix: str, path: str | os.PathLike, expected: str) -> dict[str, Any]:
    """A generator source's JSON config file (``PREFIX:PATH``) as a dict; ``ValueError`` in one
    line naming ``PREFIX:PATH`` and what is wrong (``expected``: what the object should hold)."""
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{prefix}:{path}: cannot read the config: {getattr(e, 'strerror', None) or e}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{prefix}:{path}: not JSON: {e}") from None
    if not isinstance(d, dict):
        raise ValueError(f"{prefix}:{path}: expected a JSON object {expected}")
    return d


def config_options(d: dict[str, Any], known: Iterable[str], source: str, hint: str) -> dict[str, Any]:
    """A config's options with ``-`` in names read as ``_``, checked against the ``known`` names
    (``ValueError`` naming ``source``, the unknown ones, the known ones and ``hint``); also checks
    the ``seed`` every generator takes (a non-negative integer)."""
    d = {k.replace("-", "_"): v for k, v in d.items()}
    names = set(known)
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"{source}: unknown option {', '.join(unknown)} (known: {', '.join(sorted(names))}; {hint})")
    seed = d.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"{source}: 'seed' must be a non-negative integer, got {seed!r}")
    return d


def generated_sample(img: np.ndarray, ids: list[int], alphabet: Alphabet, frontend: Frontend, augment: Any,
                     rng: np.random.Generator, min_frames_fn: Callable[[int], int] | None) -> dict:
    """A generator source's drawing (uint8 image, label ids) as the trainer reads a sample: resized
    to the front-end's height (as ``ImageFrontend.training_input``), stretched to the narrowest
    width whose CTC frames fit ``ids`` when ``min_frames_fn`` says it is too narrow, augmented by
    ``augment`` (seeded from ``rng``; None: not augmented; its crop view, if it draws one, before
    the stretch), as a tensor."""
    if augment is not None:
        set_seed = getattr(augment, "set_seed", None)
        if set_seed is not None:
            set_seed(int(rng.integers(2**32)))
    prepare = getattr(frontend, "prepare_training", None)
    if prepare is not None:
        img = prepare(img, augment)
    else:
        img = resize_to_height(img, frontend.height, max_width=frontend.max_width, min_width=DEFAULT_MIN_WIDTH,
                               width_scale=getattr(frontend, "width_scale", 1.0))
    if min_frames_fn is not None:
        need, width = ctc_min_frames(ids), img.shape[1]
        while min_frames_fn(width) < need:
            width += 1
        if width != img.shape[1]:
            img = cv2.resize(img, (width, img.shape[0]), interpolation=cv2.INTER_LINEAR)
    if augment is not None:
        img = augment(img)
    image = image_to_tensor(img)  # (C, height, w)
    return {"image": image, "ids": ids, "label": alphabet.decode(ids), "width": int(image.shape[-1])}


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
