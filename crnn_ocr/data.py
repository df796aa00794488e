"""LMDB datasets in the field's standard layout, mixing, width bucketing and batch collation.

The layout (used by CRNN, deep-text-recognition-benchmark, parseq, ...):

    b"num-samples"      -> b"50000"
    b"image-000000001"  -> encoded PNG/JPEG bytes (speech: encoded WAV/FLAC/OGG bytes, stored as-is)
    b"label-000000001"  -> UTF-8 label (speech: the transcript)

numbered from 1. Speech datasets use the same keys: the audio file's bytes take the image's
place, and ``LmdbDataset(..., audio=AudioFrontend(...))`` turns them into log-mel spectrograms. ``write_lmdb`` writes it, ``LmdbDataset`` reads it (any tool's), and
``create_lmdb_from_label_file`` / ``create_lmdb_from_folder`` build one from images on disk.

Samples flow as: LMDB bytes -> ``decode_image`` -> ``resize_to_height`` (keep ratio, per-sample
width) -> augmentation (training only) -> ``image_to_tensor`` -> ``collate_batch`` (right-padded
batch plus each sample's *true* width, from which the trainer computes CTC input lengths as
``output_lengths(input_widths, model_config)``).
"""

from __future__ import annotations

import bisect
import io
import math
import os
import re
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import lmdb
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from crnn_ocr.alphabet import Alphabet, ctc_min_frames
from crnn_ocr.audio import AudioFrontend, audio_features, audio_num_frames, build_speech_augmentation, is_audio_file
from crnn_ocr.preprocessing import (
    DEFAULT_MIN_WIDTH,
    decode_image,
    image_to_tensor,
    is_image_file,
    pad_batch,
    resize_to_height,
    resized_width,
)

NUM_SAMPLES_KEY = b"num-samples"


def image_key(index: int) -> bytes:
    """Key of the 1-based sample ``index``'s image."""
    return b"image-%09d" % index


def label_key(index: int) -> bytes:
    """Key of the 1-based sample ``index``'s label."""
    return b"label-%09d" % index


# ------------------------------------------------------------------------------------ writing
def write_lmdb(
    path: str | os.PathLike,
    samples: Iterable[tuple[bytes, str]],
    *,
    map_size: int = 1 << 30,
    commit_every: int = 1000,
    overwrite: bool = False,
) -> int:
    """Write ``(encoded image bytes, label)`` pairs as the standard layout; returns the count.

    Commits every ``commit_every`` samples and doubles ``map_size`` whenever the map is full, so
    the initial size is only a hint. An existing LMDB at ``path`` is an error unless ``overwrite``.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    data_file = path / "data.mdb"
    if data_file.exists():
        if not overwrite:
            raise FileExistsError(f"{path}: an LMDB already exists there (use overwrite)")
        data_file.unlink()
        (path / "lock.mdb").unlink(missing_ok=True)
    # lock=False: a single writer, and no lock.mdb left beside the finished dataset
    env = lmdb.open(os.fspath(path), map_size=map_size, lock=False, meminit=False, subdir=True)

    def commit(entries: list[tuple[bytes, bytes]]) -> None:
        while True:
            try:
                with env.begin(write=True) as txn:
                    for key, value in entries:
                        txn.put(key, value)
                return
            except lmdb.MapFullError:
                env.set_mapsize(env.info()["map_size"] * 2)

    count = 0
    chunk: list[tuple[bytes, bytes]] = []
    try:
        for image, label in samples:
            if not isinstance(label, str):
                raise TypeError(f"sample {count + 1}: label must be str, got {type(label).__name__}")
            count += 1
            chunk.append((image_key(count), bytes(image)))
            chunk.append((label_key(count), label.encode("utf-8")))
            if len(chunk) >= 2 * commit_every:
                commit(chunk)
                chunk = []
        chunk.append((NUM_SAMPLES_KEY, str(count).encode()))
        commit(chunk)
        env.sync()
    finally:
        env.close()
    return count


# ------------------------------------------------------------------------------------ reading
_ENVS: dict[tuple[int, int], tuple[int, lmdb.Environment]] = {}


def _shared_env(path: str) -> lmdb.Environment:
    """This process's read-only environment for the LMDB at ``path``, opened on first use.

    LMDB forbids opening one environment twice in a process, so datasets on the same files
    (train and val on one LMDB) share it. An environment inherited through ``fork`` (DataLoader
    workers) is released in the child and reopened. Read-only and lock-free: no lock file is
    written, so read-only media and many workers are fine.
    """
    subdir = os.path.isdir(path)
    st = os.stat(os.path.join(path, "data.mdb") if subdir else path)
    key, pid = (st.st_dev, st.st_ino), os.getpid()
    cached = _ENVS.get(key)
    if cached is not None:
        owner, env = cached
        if owner == pid:
            return env
        env.close()  # the parent's; closing our copy of the mapping leaves the parent's intact
    env = lmdb.open(path, readonly=True, lock=False, readahead=False, meminit=False, subdir=subdir)
    _ENVS[key] = (pid, env)
    return env


def _image_size(buf: memoryview | bytes) -> tuple[int, int] | None:
    """(width, height) from the image header without decoding pixels; None if unreadable."""
    head = bytes(buf[:24])
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        w, h = struct.unpack(">II", head[16:24])
        return (w, h) if w > 0 and h > 0 else None
    try:
        from PIL import Image

        with Image.open(io.BytesIO(bytes(buf))) as img:  # lazy: reads the header only
            w, h = img.size
    except Exception:  # Pillow raises many types for garbage; all mean "corrupt"
        return None
    return (w, h) if w > 0 and h > 0 else None


# (stats key, singular, plural) in summary order
_REASONS = (
    ("missing", "missing entry", "missing entries"),
    ("empty_label", "empty label", "empty labels"),
    ("bad_utf8", "non-UTF-8 label", "non-UTF-8 labels"),
    ("unknown_symbols", "unknown symbols", "unknown symbols"),
    ("corrupt", "corrupt image", "corrupt images"),
    ("too_long", "too long for their width", "too long for their width"),
    ("corrupt_audio", "unreadable audio", "unreadable audio"),
    ("too_long_audio", "audio longer than the max width", "audio longer than the max width"),
)


def _summary(stats: dict[str, int]) -> str:
    parts = [f"{stats[k]} {one if stats[k] == 1 else many}" for k, one, many in _REASONS if stats.get(k)]
    head = f"skipped {stats['skipped']} of {stats['total']}"
    return f"{head}: {', '.join(parts)}" if parts else head


def _resolve_augment(augment: bool | str | Callable | None) -> Callable[[np.ndarray], np.ndarray] | None:
    if augment is None or augment is False:
        return None
    if callable(augment):
        return augment
    from crnn_ocr.augment import build_augmentation

    return build_augmentation("default" if augment is True else augment)


def _sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 32-bit seed for one sample's augmentation in one epoch (well mixed, never negative)."""
    return int(np.random.SeedSequence([seed % 2**32, epoch, index]).generate_state(1)[0])


class LmdbDataset(Dataset):
    """Samples of one standard-layout LMDB, filtered and counted at start.

    Items are ``dict(image=(C, height, w) float tensor in [-1, 1], ids=list[int], label=str,
    width=int)`` where ``label`` is the target text as the alphabet spells it (case-folded for
    ``ignore_case`` alphabets; ``alphabet.decode(ids)``) and ``width`` is ``w``. An image that
    fails to decode at read time gives ``None`` (``collate_batch`` drops and counts it).

    At init every sample is checked, without decoding pixels: missing keys (``num-samples``
    larger than the entries), empty or non-UTF-8 labels, symbols outside the alphabet, unreadable
    image headers, and labels needing more CTC frames than their resized width gives
    (``min_frames_fn(width) -> frames``, e.g. ``lambda w: output_length(w, model_config)``).
    ``.stats`` holds the counts, ``.summary()`` says them in one line, ``.widths`` (kept samples'
    resized widths) feeds ``BucketBatchSampler``. If nothing is left, ``ValueError``.

    ``filter=False`` skips the scan (fast start for trusted data): every index is kept,
    ``.widths`` is None, and unusable samples come back as ``None``.
    ``augment``: False, True (``"default"``), a strength name, or a callable on uint8 images.
    ``width_scale``: images are stretched horizontally by this after the keep-ratio resize
    (``resize_to_height``); a model is read with the scale it was trained with.

    Augmentation is deterministic per sample: before each sample it is reseeded from
    ``(seed, epoch, LMDB index)`` (``set_epoch`` sets the epoch; the trainer calls it every
    epoch), so a sample's augmented image depends on neither the number of DataLoader workers
    nor where a run was resumed. A callable without a ``set_seed(int)`` method is not reseeded.

    Speech: with ``audio`` (an ``AudioFrontend``; ``height`` must be its ``n_mels``, ``channels``
    1) the image entries hold encoded audio (WAV, FLAC, OGG, ... as stored by ``create_lmdb`` or
    the speech generators). The scan reads only each file's header (sample count and rate ->
    ``width`` = spectrogram frames, at least ``min_width``); audio with more frames than
    ``max_width`` is skipped (never squeezed), as is audio soundfile cannot read or at a rate the
    front-end rejects. Items are then ``image=(1, n_mels, frames)`` normalized log-mel
    spectrograms (``crnn_ocr.audio.audio_features``) and ``augment`` means ``SpeechAugment``
    (True, a strength name, or an object with ``augment_wave``/``augment_spec``/``set_seed``).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        alphabet: Alphabet,
        *,
        height: int = 32,
        channels: int = 1,
        max_width: int | None = None,
        min_width: int = DEFAULT_MIN_WIDTH,
        augment: bool | str | Callable[[np.ndarray], np.ndarray] = False,
        min_frames_fn: Callable[[int], int] | None = None,
        filter: bool = True,
        seed: int = 0,
        audio: AudioFrontend | None = None,
        width_scale: float = 1.0,
    ) -> None:
        if not width_scale > 0:
            raise ValueError(f"width_scale must be positive, got {width_scale}")
        if audio is not None and (height != audio.n_mels or channels != 1):
            raise ValueError(f"audio samples give 1 x {audio.n_mels} x frames spectrograms; got height {height}, channels {channels}")
        self.audio = audio
        self.path = os.fspath(path)
        self.seed = seed
        self.epoch = 0
        self.alphabet = alphabet
        self.height = height
        self.channels = channels
        self.max_width = max_width
        self.min_width = min_width
        self.width_scale = width_scale
        self._augment_spec = augment
        self._augment: Callable | None = None
        self._env: lmdb.Environment | None = None
        self._pid: int | None = None  # process that set up _env and _augment
        if not os.path.exists(self.path):
            raise ValueError(f"{self.path}: no such LMDB")
        try:
            env = _shared_env(self.path)
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
        for key, _, _ in _REASONS:
            stats.setdefault(key, 0)
        self.stats: dict[str, int] = stats
        self._indices = indices
        self.widths: np.ndarray | None = widths
        if len(indices) == 0:
            raise ValueError(f"{self.path}: no usable samples ({self.summary()})")

    def _scan(
        self, txn: lmdb.Transaction, total: int, min_frames_fn: Callable[[int], int] | None
    ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        counts = {key: 0 for key, _, _ in _REASONS}
        indices = np.empty(total, dtype=np.int64)
        widths = np.empty(total, dtype=np.int32)
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
                counts["empty_label"] += 1
                continue
            ids = self.alphabet.try_encode(label)
            if ids is None:
                counts["unknown_symbols"] += 1
                continue
            if not ids:  # e.g. only separators in a token label
                counts["empty_label"] += 1
                continue
            if self.audio is not None:  # header only: sample count and rate -> spectrogram frames
                frames = audio_num_frames(image_buf, self.audio)
                if frames is None:
                    counts["corrupt_audio"] += 1
                    continue
                if self.max_width is not None and frames > self.max_width:
                    counts["too_long_audio"] += 1
                    continue
                width = max(frames, self.min_width)
            else:
                size = _image_size(image_buf)
                if size is None:
                    counts["corrupt"] += 1
                    continue
                width = resized_width(size[0], size[1], self.height, max_width=self.max_width, min_width=self.min_width,
                                      width_scale=self.width_scale)
            if min_frames_fn is not None and ctc_min_frames(ids) > min_frames_fn(width):
                counts["too_long"] += 1
                continue
            indices[kept] = index
            widths[kept] = width
            kept += 1
        stats = {"total": total, "kept": kept, "skipped": total - kept, **counts}
        return indices[:kept].copy(), widths[:kept].copy(), stats

    def summary(self) -> str:
        """E.g. ``"skipped 12 of 50000: 9 unknown symbols, 3 too long for their width"``."""
        return _summary(self.stats)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's augmentation (call before the epoch's DataLoader starts its workers)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self._indices)

    def __repr__(self) -> str:
        return f"LmdbDataset({self.path!r}, {len(self)} samples, height={self.height}, channels={self.channels})"

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_augment"] = None  # rebuilt in the worker process
        state["_env"] = None
        state["_pid"] = None
        return state

    def _ensure_open(self) -> lmdb.Environment:
        pid = os.getpid()
        if self._pid != pid:  # first use in this process (or a forked worker)
            self._env = _shared_env(self.path)
            if self.audio is not None:
                self._augment = build_speech_augmentation(self._augment_spec)
            else:
                self._augment = _resolve_augment(self._augment_spec)
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
        if self.audio is not None:
            return self._audio_item(index, label_buf, image_buf)
        try:
            ids = self.alphabet.try_encode(label_buf.decode("utf-8"))
            if not ids:
                return None
            img = decode_image(image_buf, self.channels)  # (H, W[, 3]) uint8
        except (ValueError, UnicodeDecodeError):
            return None
        img = resize_to_height(img, self.height, max_width=self.max_width, min_width=self.min_width,
                               width_scale=self.width_scale)  # (height, w)
        if self._augment is not None:
            set_seed = getattr(self._augment, "set_seed", None)
            if set_seed is not None:
                set_seed(_sample_seed(self.seed, self.epoch, index))
            img = self._augment(img)  # same shape
        image = image_to_tensor(img)  # (C, height, w)
        return {"image": image, "ids": ids, "label": self.alphabet.decode(ids), "width": int(image.shape[-1])}

    def _audio_item(self, index: int, label_buf: bytes, audio_buf: bytes) -> dict | None:
        """Encoded audio -> the same item as an image: (1, n_mels, frames) log-mel spectrogram."""
        assert self.audio is not None
        augment = self._augment
        if augment is not None:
            augment.set_seed(_sample_seed(self.seed, self.epoch, index))
        try:
            ids = self.alphabet.try_encode(label_buf.decode("utf-8"))
            if not ids:
                return None
            spec = audio_features(audio_buf, self.audio, augment=augment, min_width=self.min_width)  # (n_mels, frames)
        except (ValueError, UnicodeDecodeError):
            return None
        image = torch.from_numpy(spec).unsqueeze(0)  # (1, n_mels, frames)
        return {"image": image, "ids": ids, "label": self.alphabet.decode(ids), "width": int(image.shape[-1])}


def iter_lmdb_samples(path: str | os.PathLike) -> Iterator[tuple[int, bytes, str]]:
    """Every sample of a standard-layout LMDB, unfiltered, for evaluation: (1-based index, image bytes, label).

    Missing entries are skipped; a non-UTF-8 label is decoded with replacement characters.
    Raises ``ValueError`` if ``path`` is not a dataset LMDB.
    """
    path = os.fspath(path)
    try:
        env = _shared_env(path)
    except (lmdb.Error, OSError) as e:
        raise ValueError(f"{path}: cannot open as LMDB: {e}") from None
    with env.begin() as txn:
        raw = txn.get(NUM_SAMPLES_KEY)
    if raw is None or not raw.strip().isdigit():
        raise ValueError(f"{path}: not a dataset LMDB (no valid 'num-samples' key)")
    for index in range(1, int(raw) + 1):
        with env.begin() as txn:
            image, label = txn.get(image_key(index)), txn.get(label_key(index))
        if image is not None and label is not None:
            yield index, image, label.decode("utf-8", errors="replace")


class MixedDataset(Dataset):
    """Several datasets as one index space, remembering each one's size and sampling ratio.

    Indexing is plain concatenation; the ratios take effect through
    ``BucketBatchSampler.for_dataset(mixed, ...)``, which draws each epoch's samples so that
    dataset ``k`` contributes ``ratios[k]`` of them.
    """

    def __init__(self, datasets: Sequence[Dataset], ratios: Sequence[float] | None = None) -> None:
        if not datasets:
            raise ValueError("MixedDataset needs at least one dataset")
        if ratios is not None:
            if len(ratios) != len(datasets):
                raise ValueError(f"{len(ratios)} ratios for {len(datasets)} datasets")
            if any(r < 0 for r in ratios) or sum(ratios) <= 0:
                raise ValueError(f"ratios must be non-negative and not all zero, got {list(ratios)}")
        self.datasets = list(datasets)
        self.sizes = [len(d) for d in self.datasets]
        self.ratios = None if ratios is None else [float(r) for r in ratios]
        self._offsets = np.cumsum([0] + self.sizes).tolist()
        widths = [getattr(d, "widths", None) for d in self.datasets]
        self.widths = None if any(w is None for w in widths) else np.concatenate(widths)

    def __len__(self) -> int:
        return self._offsets[-1]

    def __getitem__(self, i: int) -> dict | None:
        k = bisect.bisect_right(self._offsets, i) - 1
        return self.datasets[k][i - self._offsets[k]]

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to every dataset that has ``set_epoch`` (per-sample augmentation)."""
        for d in self.datasets:
            if hasattr(d, "set_epoch"):
                d.set_epoch(epoch)

    def summary(self) -> str:
        return "; ".join(f"{getattr(d, 'path', k)}: {d.summary()}" for k, d in enumerate(self.datasets) if hasattr(d, "summary"))


def mix_datasets(datasets: Sequence[Dataset], ratios: Sequence[float] | None = None) -> MixedDataset:
    """Combine datasets; ``ratios`` (e.g. ``[0.5, 0.5]``) sets each one's share of an epoch."""
    return MixedDataset(datasets, ratios)


# ------------------------------------------------------------------------------------ batching
def _largest_remainder(total: int, weights: Sequence[float]) -> list[int]:
    """Split ``total`` into integer counts proportional to ``weights`` that sum to ``total``."""
    w = np.asarray(weights, dtype=np.float64)
    exact = total * w / w.sum()
    counts = np.floor(exact).astype(np.int64)
    for k in np.argsort(-(exact - counts), kind="stable")[: total - int(counts.sum())]:
        counts[k] += 1
    return counts.tolist()


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of indices with similar widths, to cut padding; deterministic and DDP-aware.

    Each epoch draws its samples: a permutation of all, or, when ``ratios`` is given, draws from
    the consecutive ``group_sizes`` segments of ``widths`` (one per dataset) in those
    proportions. They are cut into chunks of ``chunk_batches`` batches, each chunk is sorted by
    width and split into batches, and the batch order is shuffled. The result depends only on
    ``seed`` and the epoch (``set_epoch``). With ``world_size > 1`` rank ``r`` takes batches
    ``r, r + world_size, ...``; every rank gets ``len(self)`` batches (the list is padded by
    repeating its first batches, or truncated when ``drop_last``).
    """

    def __init__(
        self,
        widths: Sequence[int] | np.ndarray,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        *,
        rank: int = 0,
        world_size: int = 1,
        group_sizes: Sequence[int] | None = None,
        ratios: Sequence[float] | None = None,
        num_samples: int | None = None,
        chunk_batches: int = 50,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.widths = np.asarray(widths, dtype=np.int64)
        n = len(self.widths)
        sizes = list(group_sizes) if group_sizes is not None else [n]
        if ratios is not None:
            if sum(sizes) != n or len(sizes) != len(ratios):
                raise ValueError(f"group sizes {sizes} must sum to {n} and match {len(ratios)} ratios")
            if any(r > 0 and s == 0 for r, s in zip(ratios, sizes)):
                raise ValueError("a dataset with a positive ratio is empty")
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.group_sizes = sizes
        self.ratios = None if ratios is None else list(ratios)
        self.num_samples = n if num_samples is None else num_samples
        self.chunk_batches = max(1, chunk_batches)
        self.epoch = 0

    @classmethod
    def for_dataset(cls, dataset: Dataset, batch_size: int, **kwargs) -> BucketBatchSampler:
        """From an ``LmdbDataset`` or ``MixedDataset`` (uses its widths, sizes and ratios)."""
        widths = getattr(dataset, "widths", None)
        if widths is None:
            raise ValueError("the dataset has no widths (built with filter=False?)")
        if getattr(dataset, "ratios", None) is not None:
            kwargs.setdefault("group_sizes", dataset.sizes)
            kwargs.setdefault("ratios", dataset.ratios)
        return cls(widths, batch_size, **kwargs)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _num_batches(self) -> int:
        return self.num_samples // self.batch_size if self.drop_last else math.ceil(self.num_samples / self.batch_size)

    def __len__(self) -> int:
        n = self._num_batches()
        return n // self.world_size if self.drop_last else math.ceil(n / self.world_size)

    def _draw(self, rng: np.random.Generator, start: int, size: int, count: int) -> np.ndarray:
        """``count`` indices from ``[start, start + size)``: whole passes, then a partial one."""
        passes = []
        for _ in range(math.ceil(count / size) if size else 0):
            passes.append(rng.permutation(size) if self.shuffle else np.arange(size))
        return (np.concatenate(passes)[:count] + start) if passes else np.empty(0, dtype=np.int64)

    def _epoch_indices(self, rng: np.random.Generator) -> np.ndarray:
        if self.ratios is None:
            return self._draw(rng, 0, len(self.widths), self.num_samples)
        counts = _largest_remainder(self.num_samples, self.ratios)
        offsets = np.cumsum([0] + self.group_sizes)
        parts = [self._draw(rng, int(offsets[k]), self.group_sizes[k], c) for k, c in enumerate(counts)]
        order = np.concatenate(parts)
        return rng.permutation(order) if self.shuffle else order

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = self._epoch_indices(rng)
        chunk = self.batch_size * self.chunk_batches
        batches: list[np.ndarray] = []
        for start in range(0, len(order), chunk):
            part = order[start : start + chunk]
            part = part[np.argsort(self.widths[part], kind="stable")]  # similar widths side by side
            batches.extend(part[b : b + self.batch_size] for b in range(0, len(part), self.batch_size))
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.shuffle:
            batches = [batches[k] for k in rng.permutation(len(batches))]
        per_rank = len(self)
        if self.world_size > 1:
            needed = per_rank * self.world_size
            while batches and len(batches) < needed:  # pad by repeating (not drop_last)
                batches.extend(batches[: needed - len(batches)])
            batches = batches[:needed][self.rank :: self.world_size]
        for b in batches[:per_rank]:
            yield b.tolist()


def collate_batch(items: Sequence[dict | None]) -> dict:
    """Items of ``LmdbDataset`` -> a padded batch; ``None`` items (corrupt images) are dropped and counted.

    Returns ``images`` (N, C, H, W_max) right-padded by repeating the last column, ``targets``
    (sum L,) long, ``target_lengths`` (N,) long, ``input_widths`` (N,) long (each image's true
    width: CTC input lengths are ``output_lengths(input_widths, config)``), ``labels`` list[str],
    ``num_corrupt`` int. An all-corrupt batch has N == 0 (``images`` of shape (0, 0, 0, 0)).
    """
    kept = [it for it in items if it is not None]
    num_corrupt = len(items) - len(kept)
    if not kept:
        return {
            "images": torch.empty(0, 0, 0, 0),
            "targets": torch.empty(0, dtype=torch.long),
            "target_lengths": torch.empty(0, dtype=torch.long),
            "input_widths": torch.empty(0, dtype=torch.long),
            "labels": [],
            "num_corrupt": num_corrupt,
        }
    images = pad_batch([it["image"] for it in kept])  # (N, C, H, W_max)
    targets = torch.tensor([i for it in kept for i in it["ids"]], dtype=torch.long)  # (sum L,)
    return {
        "images": images,
        "targets": targets,
        "target_lengths": torch.tensor([len(it["ids"]) for it in kept], dtype=torch.long),  # (N,)
        "input_widths": torch.tensor([it["width"] for it in kept], dtype=torch.long),  # (N,)
        "labels": [it["label"] for it in kept],
        "num_corrupt": num_corrupt,
    }


# ------------------------------------------------------------------------------------ building
@dataclass
class CreateStats:
    """What ``create_lmdb_*`` wrote and skipped."""

    written: int = 0
    undecodable: int = 0
    missing_files: int = 0
    empty_labels: int = 0
    out: str = ""
    media: str = "image"  # "image" or "audio": what the entries hold
    first_skipped: list[str] = field(default_factory=list)  # the first few skipped files, each with why

    MAX_NAMED = 5

    @property
    def skipped(self) -> int:
        return self.undecodable + self.missing_files + self.empty_labels

    def skip(self, what: str, path: str | os.PathLike, why: str) -> None:
        """Count one skipped entry (``what``: undecodable, missing_files or empty_labels), naming the first few."""
        setattr(self, what, getattr(self, what) + 1)
        if len(self.first_skipped) < self.MAX_NAMED:
            self.first_skipped.append(f"{os.fspath(path)} ({why})")

    def summary(self) -> str:
        """E.g. ``"wrote 98 samples to out/ (skipped 2: 1 undecodable image, 1 missing file; first: a.png
        (undecodable image), b.png (missing file))"``."""
        parts = [
            f"{n} {one if n == 1 else many}"
            for n, one, many in (
                (self.undecodable, *(("unreadable audio file", "unreadable audio files") if self.media == "audio"
                                      else ("undecodable image", "undecodable images"))),
                (self.missing_files, "missing file", "missing files"),
                (self.empty_labels, "empty label", "empty labels"),
            )
            if n
        ]
        named = f"; first: {', '.join(self.first_skipped)}" if self.first_skipped else ""
        tail = f" (skipped {self.skipped}: {', '.join(parts)}{named})" if parts else ""
        return f"wrote {self.written} samples to {self.out}{tail}"


def read_label_file(path: str | os.PathLike, root: str | os.PathLike | None = None) -> list[tuple[Path, str]]:
    """Parse ``path<TAB>label`` lines (deep-text-recognition-benchmark's gt.txt) into (image path, label).

    Image paths are relative to ``root`` (default: the label file's folder). Blank lines are
    ignored; a line without a tab raises ``ValueError`` naming the file and line.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, expected a label file")
    if not path.is_file():
        raise ValueError(f"{path}: no such label file")
    base = Path(root) if root is not None else path.parent
    if not base.is_dir():
        raise ValueError(f"{base}: {'is a file, expected an' if base.exists() else 'no such'} image folder")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 ({e.reason} at byte {e.start})") from None
    entries = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise ValueError(f"{path}:{lineno}: expected 'image path<TAB>label', got {line[:60]!r}")
        image, label = line.split("\t", 1)
        if not image.strip():
            raise ValueError(f"{path}:{lineno}: empty image path")
        entries.append((base / image.strip(), label))
    return entries


_INDEX_SUFFIX = re.compile(r"_\d+$")


def scan_image_folder(folder: str | os.PathLike, *, media: str = "image") -> list[tuple[Path, str]]:
    """Images (``media="audio"``: audio files) under ``folder`` (recursively, sorted) with their labels.

    The label of ``x/word_12.png`` is the first line of the sibling ``x/word_12.txt`` when it
    exists, else the file name stem without a trailing ``_<digits>`` index (``word``), the naming
    of TextRecognitionDataGenerator-style folders.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: {'is a file, expected a folder' if folder.exists() else 'no such folder'}")
    wanted = is_audio_file if media == "audio" else is_image_file
    entries = []
    for image in sorted(p for p in folder.rglob("*") if p.is_file() and wanted(p)):
        sidecar = image.with_suffix(".txt")
        if sidecar.is_file():
            lines = sidecar.read_text(encoding="utf-8-sig", errors="replace").splitlines()
            label = lines[0] if lines else ""
        else:
            label = _INDEX_SUFFIX.sub("", image.stem)
        entries.append((image, label))
    return entries


def _check_audio(data: bytes, full: bool) -> bool:
    """Whether encoded audio is usable: fully decoded (``full``) or its header read."""
    from crnn_ocr.audio import audio_info, read_audio

    if not full:
        return audio_info(data) is not None
    try:
        read_audio(data)
    except ValueError:
        return False
    return True


def create_lmdb(
    out: str | os.PathLike,
    entries: Iterable[tuple[Path, str]],
    *,
    check: bool = True,
    overwrite: bool = False,
    media: str = "auto",
) -> CreateStats:
    """Write (image or audio file, label) pairs to an LMDB, skipping and counting unusable ones.

    The files' bytes are stored as they are under the ``image-%09d`` keys, audio included (WAV,
    FLAC, OGG, ...; ``LmdbDataset(audio=...)`` reads them). ``media``: "image", "audio", or
    "auto" (audio when every file has an audio extension). ``check`` fully decodes every file
    (slower, but no corrupt sample reaches training); without it images are only checked to be
    non-empty and audio to have a readable header.
    """
    if media not in ("auto", "image", "audio"):
        raise ValueError(f"media must be auto, image or audio, got {media!r}")
    if media == "auto":
        entries = list(entries)
        media = "audio" if entries and all(is_audio_file(p) for p, _ in entries) else "image"
    stats = CreateStats(out=os.fspath(out), media=media)
    if not overwrite and (Path(out) / "data.mdb").exists():
        raise FileExistsError(f"{out}: an LMDB already exists there (use --overwrite)")

    def samples() -> Iterator[tuple[bytes, str]]:
        unreadable = "unreadable audio" if media == "audio" else "undecodable image"
        for image, label in entries:
            if not label:
                stats.skip("empty_labels", image, "empty label")
                continue
            try:
                data = Path(image).read_bytes()
            except OSError:
                stats.skip("missing_files", image, "missing file")
                continue
            if media == "audio":
                if not data or not _check_audio(data, check):
                    stats.skip("undecodable", image, unreadable)
                    continue
            elif check:
                try:
                    decode_image(data, 1)
                except ValueError:
                    stats.skip("undecodable", image, unreadable)
                    continue
            elif not data:
                stats.skip("undecodable", image, unreadable)
                continue
            yield data, label

    stats.written = write_lmdb(out, samples(), overwrite=overwrite)
    return stats


def create_lmdb_from_label_file(
    out: str | os.PathLike,
    label_file: str | os.PathLike,
    *,
    root: str | os.PathLike | None = None,
    check: bool = True,
    overwrite: bool = False,
    media: str = "auto",
) -> CreateStats:
    """LMDB from a ``path<TAB>label`` file (gt.txt, or audio paths with transcripts); see ``read_label_file``."""
    return create_lmdb(out, read_label_file(label_file, root), check=check, overwrite=overwrite, media=media)


def create_lmdb_from_folder(
    out: str | os.PathLike, folder: str | os.PathLike, *, check: bool = True, overwrite: bool = False, media: str = "auto"
) -> CreateStats:
    """LMDB from a folder of images (or audio files) labelled by sibling ``.txt`` files or names;
    see ``scan_image_folder``. ``media="auto"``: the images, or the audio files if it holds no image."""
    if media not in ("auto", "image", "audio"):
        raise ValueError(f"media must be auto, image or audio, got {media!r}")
    entries = scan_image_folder(folder, media="audio" if media == "audio" else "image")
    if media == "auto":
        media = "image"
        if not entries:
            entries, media = scan_image_folder(folder, media="audio"), "audio"
    return create_lmdb(out, entries, check=check, overwrite=overwrite, media=media)
