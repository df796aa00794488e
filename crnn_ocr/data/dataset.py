"""``LmdbDataset``: the samples of one standard-layout LMDB as the model's training inputs.

Samples flow as: LMDB bytes -> the front-end's ``training_input`` (images: decode, keep-ratio
resize to the model's height, squeezed to ``max_width``; speech: log-mel spectrogram) with its
augmentation (training only) -> ``collate_batch`` (``crnn_ocr.data.sampling``: right-padded batch
plus each sample's *true* width). The dataset asks the front-end (``crnn_ocr.frontend``) for
widths and inputs and never what kind it is.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import lmdb
import numpy as np
from torch.utils.data import Dataset

from crnn_ocr.alphabet import Alphabet, ctc_min_frames
from crnn_ocr.data.lmdb_format import NUM_SAMPLES_KEY, image_key, label_key, shared_env
from crnn_ocr.frontend import Frontend, ImageFrontend, Media


def _reasons(media: Media) -> tuple[tuple[str, str, str], ...]:
    """(stats key, singular, plural) of every reason to skip a sample, in summary order."""
    return (
        ("missing", "missing entry", "missing entries"),
        ("empty_label", "empty label", "empty labels"),
        ("bad_utf8", "non-UTF-8 label", "non-UTF-8 labels"),
        ("unknown_symbols", "unknown symbols", "unknown symbols"),
        ("corrupt", *media.corrupt),
        ("too_long", "too long for their width", "too long for their width"),
        ("too_wide", *media.too_wide),
        ("too_short", "shorter than the model's minimum", "shorter than the model's minimum"),
    )


def _sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 32-bit seed for one sample's augmentation in one epoch (well mixed, never negative)."""
    return int(np.random.SeedSequence([seed % 2**32, epoch, index]).generate_state(1)[0])


class LmdbDataset(Dataset):
    """Samples of one standard-layout LMDB, filtered and counted at start.

    ``frontend`` (default ``ImageFrontend()``: gray, 32 px high) says how the stored bytes become
    model inputs: the settings the model is trained with. Items are ``dict(image=(C, height, w)
    float tensor, ids=list[int], label=str, width=int)`` where ``label`` is the target text as the
    alphabet spells it (case-folded for ``ignore_case`` alphabets; ``alphabet.decode(ids)``) and
    ``width`` is ``w``. A sample that fails to decode at read time gives ``None``
    (``collate_batch`` drops and counts it).

    At init every sample is checked, without decoding it: missing keys (``num-samples`` larger
    than the entries), empty or non-UTF-8 labels, symbols outside the alphabet, unreadable headers
    (``Frontend.input_width`` is None), inputs wider than the front-end's ``max_width`` that it
    does not squeeze (audio), and labels needing more CTC frames than their width gives
    (``min_frames_fn(width) -> frames``, e.g. ``lambda w: output_length(w, model_config)``), or
    inputs narrower than ``min_width`` (a classifier's shortest input).
    ``bad_labels="raise"``: an empty label, or one the alphabet cannot encode, is a ``ValueError``
    naming the LMDB, the sample and why (``alphabet.encode``'s message) instead of a count (a
    classifier's class list: an unknown class is a data error, not noise to skip).
    ``.stats`` holds the counts, ``.summary()`` says them in one line, ``.widths`` (kept samples'
    input widths) feeds ``BucketBatchSampler``. If nothing is left, ``ValueError``.

    ``filter=False`` skips the scan (fast start for trusted data): every index is kept,
    ``.widths`` is None, and unusable samples come back as ``None``.
    ``augment``: False, True (the default strength), a strength name, or an augmentation object
    (images: a callable on uint8 images; speech: a ``SpeechAugment``): ``Frontend.augmentation``.

    Augmentation is deterministic per sample: before each sample it is reseeded from
    ``(seed, epoch, LMDB index)`` (``set_epoch`` sets the epoch; the trainer calls it every
    epoch), so a sample's augmented input depends on neither the number of DataLoader workers
    nor where a run was resumed. An augmentation without a ``set_seed(int)`` method is not reseeded.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        alphabet: Alphabet,
        frontend: Frontend | None = None,
        *,
        augment: bool | str | Callable | object = False,
        min_frames_fn: Callable[[int], int] | None = None,
        min_width: int | None = None,
        bad_labels: str = "skip",
        filter: bool = True,
        seed: int = 0,
    ) -> None:
        if bad_labels not in ("skip", "raise"):
            raise ValueError(f"bad_labels must be 'skip' or 'raise', got {bad_labels!r}")
        self.path = os.fspath(path)
        self.alphabet = alphabet
        self.frontend: Frontend = frontend if frontend is not None else ImageFrontend()
        self.seed = seed
        self.epoch = 0
        self.min_width = min_width
        self.bad_labels = bad_labels
        self._augment_spec = augment
        self._augment: object | None = None
        self._env: lmdb.Environment | None = None
        self._pid: int | None = None  # process that set up _env and _augment
        if not os.path.exists(self.path):
            raise ValueError(f"{self.path}: no such LMDB")
        try:
            env = shared_env(self.path)
        except (lmdb.Error, OSError) as e:
            raise ValueError(f"{self.path}: cannot open as LMDB: {e}") from None
        with env.begin(buffers=True) as txn:
            raw = txn.get(NUM_SAMPLES_KEY)
            try:
                total = int(bytes(raw)) if raw is not None else None
            except ValueError:
                total = None
            if total is None or total < 0:
                raise ValueError(f"{self.path}: not a dataset LMDB (no valid 'num-samples' key)")
            if filter:
                indices, widths, stats = self._scan(txn, total, min_frames_fn)
            else:
                indices, widths = np.arange(1, total + 1, dtype=np.int64), None
                stats = {"total": total, "kept": total, "skipped": 0}
        for key, _, _ in _reasons(self.frontend.media):
            stats.setdefault(key, 0)
        self.stats: dict[str, int] = stats
        self._indices = indices
        self.widths: np.ndarray | None = widths
        if len(indices) == 0:
            raise ValueError(f"{self.path}: no usable samples ({self.summary()})")

    def _scan(
        self, txn: lmdb.Transaction, total: int, min_frames_fn: Callable[[int], int] | None
    ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        counts = {key: 0 for key, _, _ in _reasons(self.frontend.media)}
        indices = np.empty(total, dtype=np.int64)
        widths = np.empty(total, dtype=np.int32)
        max_width = self.frontend.max_width
        kept = 0
        for index in range(1, total + 1):
            label_buf = txn.get(label_key(index))
            label_raw = None if label_buf is None else bytes(label_buf)  # copy: the next get may reuse the buffer
            image_buf = txn.get(image_key(index))
            if label_raw is None or image_buf is None:
                counts["missing"] += 1
                continue
            try:
                label = label_raw.decode("utf-8")
            except UnicodeDecodeError:
                counts["bad_utf8"] += 1
                continue
            if not label:
                self._bad_label(index, label)
                counts["empty_label"] += 1
                continue
            ids = self.alphabet.try_encode(label)
            if ids is None:
                self._bad_label(index, label)
                counts["unknown_symbols"] += 1
                continue
            if not ids:  # e.g. only separators in a token label
                self._bad_label(index, label)
                counts["empty_label"] += 1
                continue
            width = self.frontend.input_width(image_buf)  # from the header only
            if width is None:
                counts["corrupt"] += 1
                continue
            if max_width is not None and width > max_width:  # only what the front-end does not squeeze
                counts["too_wide"] += 1
                continue
            if min_frames_fn is not None and ctc_min_frames(ids) > min_frames_fn(width):
                counts["too_long"] += 1
                continue
            if self.min_width is not None and width < self.min_width:
                counts["too_short"] += 1
                continue
            indices[kept] = index
            widths[kept] = width
            kept += 1
        stats = {"total": total, "kept": kept, "skipped": total - kept, **counts}
        return indices[:kept].copy(), widths[:kept].copy(), stats

    def _bad_label(self, index: int, label: str) -> None:
        """With ``bad_labels="raise"``: the ``ValueError`` for sample ``index``'s unusable label."""
        if self.bad_labels != "raise":
            return
        try:
            self.alphabet.encode(label)
            why = "empty label"
        except ValueError as e:
            why = str(e)
        raise ValueError(f"{self.path}: sample {index}: {why}")

    def labels(self) -> list[str]:
        """The kept samples' labels as stored, in order (e.g. to weight a sampler by class)."""
        with shared_env(self.path).begin(buffers=True) as txn:
            return [bytes(txn.get(label_key(int(i)))).decode("utf-8") for i in self._indices]

    def summary(self) -> str:
        """E.g. ``"skipped 12 of 50000: 9 unknown symbols, 3 too long for their width"``."""
        parts = [f"{self.stats[k]} {one if self.stats[k] == 1 else many}"
                 for k, one, many in _reasons(self.frontend.media) if self.stats.get(k)]
        head = f"skipped {self.stats['skipped']} of {self.stats['total']}"
        return f"{head}: {', '.join(parts)}" if parts else head

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's augmentation (call before the epoch's DataLoader starts its workers)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self._indices)

    def __repr__(self) -> str:
        return f"LmdbDataset({self.path!r}, {len(self)} samples, {self.frontend!r})"

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_augment"] = None  # rebuilt in the worker process
        state["_env"] = None
        state["_pid"] = None
        return state

    def _ensure_open(self) -> lmdb.Environment:
        pid = os.getpid()
        if self._pid != pid:  # first use in this process (or a forked worker)
            self._env = shared_env(self.path)
            self._augment = self.frontend.augmentation(self._augment_spec)
            self._pid = pid
        return self._env

    def __getitem__(self, i: int) -> dict | None:
        index = int(self._indices[i])
        env = self._ensure_open()
        with env.begin() as txn:
            label_buf = txn.get(label_key(index))
            image_buf = txn.get(image_key(index))
        if label_buf is None or image_buf is None:
            return None
        set_seed = getattr(self._augment, "set_seed", None)
        if set_seed is not None:
            set_seed(_sample_seed(self.seed, self.epoch, index))
        try:
            ids = self.alphabet.try_encode(label_buf.decode("utf-8"))
            if not ids:
                return None
            image = self.frontend.training_input(image_buf, self._augment)  # (C, height, w)
        except (ValueError, UnicodeDecodeError):
            return None
        return {"image": image, "ids": ids, "label": self.alphabet.decode(ids), "width": int(image.shape[-1])}
