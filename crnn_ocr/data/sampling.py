"""Batching: width buckets (``BucketBatchSampler``), mixing datasets by ratio, and collation.

Datasets are mixed by concatenating them (``torch.utils.data.ConcatDataset``) and giving the
sampler each one's size and share of an epoch (``group_sizes``, ``ratios``): the one mechanism the
trainer uses. ``collate_batch`` pads a batch to its widest sample and keeps each sample's true
width, from which the trainer computes CTC input lengths (``output_lengths(input_widths, config)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from crnn_ocr.preprocessing import pad_batch

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
    ``seed`` and the epoch (``set_epoch``). ``weights`` (one per sample; with no ``ratios``)
    instead draws each epoch's samples with replacement in proportion to them (balanced classes).
    ``width_fns`` (one per group, or None): ``fn(epoch, indices in the group) -> widths`` for a
    dataset whose samples change every epoch (synthetic words); it is asked for the widths of the
    samples an epoch draws from the group, and its ``widths`` segment is not read.
    ``shortest_first`` (DeepSpeech2's SortaGrad): the first ``shortest_first`` epochs are sorted by
    width as a whole and their batches run shortest first, unshuffled (a curriculum: short, easy
    utterances before long ones). With ``world_size > 1`` rank ``r`` takes batches
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
        weights: Sequence[float] | None = None,
        width_fns: Sequence[Callable[[int, np.ndarray], np.ndarray] | None] | None = None,
        shortest_first: int = 0,
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
        self.weights = None
        if weights is not None:
            w = np.asarray(weights, dtype=np.float64)
            if ratios is not None or w.shape != (n,) or not np.all(w >= 0) or not w.sum() > 0:
                raise ValueError(f"weights: one non-negative number per sample ({n}), not all zero, and no ratios")
            self.weights = w / w.sum()
        self.width_fns = list(width_fns) if width_fns is not None and any(f is not None for f in width_fns) else None
        if self.width_fns is not None and len(self.width_fns) != len(sizes):
            raise ValueError(f"width_fns: {len(self.width_fns)} for {len(sizes)} groups")
        self.num_samples = n if num_samples is None else num_samples
        self.chunk_batches = max(1, chunk_batches)
        if shortest_first < 0:
            raise ValueError(f"shortest_first must be 0 or more epochs, got {shortest_first}")
        self.shortest_first = shortest_first
        self.epoch = 0

    @classmethod
    def for_dataset(cls, dataset: Dataset, batch_size: int, **kwargs) -> BucketBatchSampler:
        """From an ``LmdbDataset`` (uses its widths)."""
        widths = getattr(dataset, "widths", None)
        if widths is None:
            raise ValueError("the dataset has no widths (built with filter=False?)")
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
        if self.weights is not None:
            return rng.choice(len(self.widths), size=self.num_samples, replace=True, p=self.weights)
        if self.ratios is None:
            return self._draw(rng, 0, len(self.widths), self.num_samples)
        counts = _largest_remainder(self.num_samples, self.ratios)
        offsets = np.cumsum([0] + self.group_sizes)
        parts = [self._draw(rng, int(offsets[k]), self.group_sizes[k], c) for k, c in enumerate(counts)]
        order = np.concatenate(parts)
        return rng.permutation(order) if self.shuffle else order

    def _widths_of(self, order: np.ndarray) -> np.ndarray:
        """Widths of the epoch's drawn samples: ``widths``, or a group's ``width_fns`` entry."""
        widths = self.widths[order]
        if self.width_fns is None:
            return widths
        offsets = np.cumsum([0] + self.group_sizes)
        for k, fn in enumerate(self.width_fns):
            if fn is not None:
                inside = (order >= offsets[k]) & (order < offsets[k + 1])
                widths[inside] = fn(self.epoch, order[inside] - offsets[k])
        return widths

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = self._epoch_indices(rng)
        widths = self._widths_of(order)  # (len(order),)
        curriculum = self.epoch < self.shortest_first
        chunk = max(1, len(order)) if curriculum else self.batch_size * self.chunk_batches
        batches: list[np.ndarray] = []
        for start in range(0, len(order), chunk):
            part = order[start : start + chunk]
            part = part[np.argsort(widths[start : start + chunk], kind="stable")]  # similar widths side by side
            batches.extend(part[b : b + self.batch_size] for b in range(0, len(part), self.batch_size))
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.shuffle and not curriculum:
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


