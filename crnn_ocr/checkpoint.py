"""Checkpoints: written atomically, loaded without executing code.

A checkpoint is a plain dict saved with ``torch.save``. Everything but tensors is plain data
(str, int, float, bool, list, dict), so ``torch.load(weights_only=True)`` reads it and a file
crafted to run code on unpickling is refused. It carries its own model config, alphabet and
front-end settings, so a checkpoint path is all inference needs.

Keys: ``format``, ``kind`` ("text", "score", "speech"; "classify", "tag": ``crnn_ocr.tasks``),
``model_config`` (dict), ``alphabet`` (dict; a classifier's class list), ``frontend`` (dict:
``crnn_ocr.frontend``; format 1 checkpoints hold
``preprocess`` instead, read the same by ``frontend.stored_frontend``), ``model`` (state dict)
and, for training checkpoints, ``optimizer``, ``scheduler``, ``scaler``, ``step``, ``epoch``,
``batches_in_epoch``, ``rng``, ``train_config``, ``best_metric``; a tagger's ``thresholds``
(one per class, chosen on validation); with ``--ema``, ``model`` is the weights' moving average
and ``train_model`` (state dict), ``ema_updates`` (int) the stepped weights and the average's count.
"""

from __future__ import annotations

import glob
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "crnn_ocr/2"  # 2: the front-end under "frontend" (1: "preprocess"; still read)
READABLE_FORMATS = ("crnn_ocr/1", FORMAT)
REQUIRED_KEYS = ("format", "model_config", "alphabet", "model")
INFERENCE_KEYS = ("kind", "model_config", "alphabet", "frontend", "preprocess", "model", "step", "train_config", "best_metric",
                  "thresholds")


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, unsafe or not a crnn_ocr checkpoint."""


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a temporary file in the same folder, fsync, rename.

    A run killed mid-write, or a write that fails (a full disk), leaves the previous file intact
    and at worst a stray ``.NAME.*.tmp`` beside it (``remove_stale_temporaries`` deletes those).
    The file gets the usual permissions (0666 less the umask), not ``mkstemp``'s 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format": FORMAT, **state}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def _umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it; restored at once
    os.umask(mask)
    return mask


def remove_stale_temporaries(path: str | os.PathLike) -> int:
    """Delete the partial ``.NAME.*.tmp`` files a killed ``save_checkpoint(path, ...)`` left behind.

    Call it only when no other process is writing ``path`` (e.g. when a run starts). Returns the
    number of files removed.
    """
    path = Path(path)
    removed = 0
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            stale.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    return removed


def _unpickling_reason(message: str) -> str:
    """The informative line of torch's weights-only refusal (it names the blocked global)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    for line in lines:
        if "GLOBAL" in line or line.startswith("Unsupported"):
            return line.rstrip(".")
    return lines[0] if lines else "unsafe pickle"


def safe_torch_load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(weights_only=True)`` of any file (ours or a third party's), with one-line
    ``CheckpointError``s: missing, a directory, unreadable, not torch, or holding code."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, expected a checkpoint file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused to load: {_unpickling_reason(str(e))} (a checkpoint may hold only "
            "tensors and plain data; anything else could run code when loaded)"
        ) from None
    except PermissionError:
        raise CheckpointError(f"{path}: checkpoint is not readable (permission denied)") from None
    except Exception as e:  # torch.load fails in many ways on foreign bytes (IndexError, RuntimeError, ...)
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if not zipfile.is_zipfile(path):
            msg = f"not a file written by torch.save: {msg}"
        raise CheckpointError(f"{path}: not a readable checkpoint ({msg})") from None


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a crnn_ocr checkpoint with ``weights_only=True``; ``CheckpointError`` on any problem."""
    path = Path(path)
    state = safe_torch_load(path, map_location)
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED_KEYS):
        raise CheckpointError(f"{path}: not a crnn_ocr checkpoint (missing {', '.join(k for k in REQUIRED_KEYS if not isinstance(state, dict) or k not in state)})")
    if state["format"] not in READABLE_FORMATS:
        raise CheckpointError(f"{path}: unsupported checkpoint format {state['format']!r} (expected {FORMAT!r})")
    return state


def inference_state(state: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A training checkpoint without its optimizer, scheduler and RNG state: what reading needs
    (a third of the size for AdamW), plus where it came from (``step``, ``train_config``,
    ``best_metric``) and any ``extra`` plain-data keys such as a provenance note."""
    return {k: state[k] for k in INFERENCE_KEYS if k in state} | extra
