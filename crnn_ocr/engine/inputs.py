"""What the step loop reads: the training sources with their batch sampler, the validation loader,
and each epoch's loader (a resumed epoch skips the batches it has already seen).

A training source is an LMDB or a wing's generator named by a prefix (``synth:CONFIG.json``:
``crnn_ocr.data.sources``); every one is mixed by ``data_ratios`` the same way.

``build_datasets`` is the one place the trainer makes datasets, from the input settings the
``RunSpec`` decided.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Sampler

from crnn_ocr.data import BucketBatchSampler, LmdbDataset, collate_batch
from crnn_ocr.data.sources import TrainingSource, open_training_source, split_source
from crnn_ocr.engine.config import TrainConfig, augment_spec
from crnn_ocr.engine.start import RunSpec
from crnn_ocr.tasks import task_for_kind


@dataclass
class TrainData:
    """The training datasets and sampler of this process; the validation loader on the main one."""

    train_sets: list[TrainingSource]
    train_set: Dataset
    sampler: BucketBatchSampler
    val_loader: DataLoader | None


def build_datasets(cfg: TrainConfig, spec: RunSpec, *, rank: int = 0, world: int = 1, main: bool = True) -> TrainData:
    """Open ``cfg.data`` (and on the main process ``cfg.val``) as ``spec`` prepares inputs, printing
    each LMDB's summary there. Which samples fit is the task's to say (``Task.dataset_options``:
    CTC frames for a label, a classifier's shortest input), and how they are drawn (``Task.sample_weights``:
    balanced classes). A source whose samples change every epoch gives its widths per epoch
    (``epoch_widths``). ``ValueError`` when one batch is more than the usable samples."""
    task = task_for_kind(cfg.kind)
    options = task.dataset_options(spec)
    augment = augment_spec(cfg)
    if cfg.crop_jitter and getattr(spec.frontend, "kind", None) != "image":
        raise ValueError(f"--crop-jitter: image models only (this run reads {getattr(spec.frontend, 'kind', 'other')} input)")
    train_sets = [open_training_source(p, spec.alphabet, spec.frontend, augment=augment, seed=cfg.seed, **options)
                  for p in cfg.data]
    if main:
        for p, ds in zip(cfg.data, train_sets):
            print(f"train {p}: {ds.summary()}", flush=True)
    widths = np.concatenate([ds.widths for ds in train_sets])
    weights = task.sample_weights(train_sets, cfg)
    sampler = BucketBatchSampler(
        widths, cfg.batch_size, shuffle=True, seed=cfg.seed, drop_last=True, rank=rank, world_size=world,
        group_sizes=[len(ds) for ds in train_sets], ratios=None if weights is not None else cfg.data_ratios, weights=weights,
        width_fns=[getattr(ds, "epoch_widths", None) for ds in train_sets], shortest_first=cfg.shortest_first,
    )
    if len(sampler) == 0:
        raise ValueError(f"--batch-size {cfg.batch_size}: larger than the training data ({len(widths)} usable samples per epoch)")
    val_loader = None
    if cfg.val and main:
        for p in cfg.val:
            if split_source(p)[0] is not None:
                raise ValueError(f"--val {p}: validation reads LMDBs (write one with datasets/synth_text.py)")
        val_sets = [LmdbDataset(p, spec.alphabet, spec.frontend, augment=False, **options) for p in cfg.val]
        for p, ds in zip(cfg.val, val_sets):
            print(f"val {p}: {ds.summary()}", flush=True)
        val_widths = [w for ds in val_sets for w in ds.widths]
        val_loader = DataLoader(
            _concat(val_sets), batch_sampler=BucketBatchSampler(val_widths, cfg.batch_size, shuffle=False, seed=0, drop_last=False),
            collate_fn=collate_batch, num_workers=min(cfg.num_workers, 2),
        )
    return TrainData(train_sets=train_sets, train_set=_concat(train_sets), sampler=sampler, val_loader=val_loader)


def _concat(sets: list) -> Dataset:
    return ConcatDataset(sets) if len(sets) > 1 else sets[0]


def epoch_loader(data: TrainData, cfg: TrainConfig, epoch: int, skip: int, device: torch.device) -> DataLoader:
    """The batches of ``epoch`` (a function of seed and epoch), less its first ``skip``."""
    data.sampler.set_epoch(epoch)
    for ds in data.train_sets:
        ds.set_epoch(epoch)  # before the workers start: they get a copy
    return DataLoader(
        data.train_set, batch_sampler=_SkipBatches(data.sampler, skip) if skip else data.sampler, collate_fn=collate_batch,
        num_workers=cfg.num_workers, pin_memory=device.type == "cuda", persistent_workers=False,
        # its own generator: starting the loader must not draw from the global RNG, or a
        # resumed epoch (one more loader start) would shift dropout's random stream
        generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch),
    )


class _SkipBatches(Sampler):
    """Batch sampler that skips the first ``skip`` batches of an epoch (mid-epoch resume)."""

    def __init__(self, sampler: BucketBatchSampler, skip: int) -> None:
        self.sampler, self.skip = sampler, skip

    def __iter__(self) -> Iterator[list[int]]:
        for i, batch in enumerate(self.sampler):
            if i >= self.skip:
                yield batch

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.skip)
