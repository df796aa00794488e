"""The trainer: one loop for every domain (text, music staves, speech).

``train`` reads top to bottom: the process (device, DDP), what the run starts from
(``resolve_start``), the data, the model and optimizer; then epochs of steps (forward, loss,
backward, clip, step), each followed by logging, validation and checkpoints; then the final save.
What differs between tasks (CTC for text, scores and speech; a classifier's cross-entropy) the
loop asks the run's task (``crnn_ocr.tasks``): the loss, the batch accuracy, the validation.
Launch with ``torchrun --nproc_per_node=N tools/train.py ...`` for DistributedDataParallel (NCCL
on CUDA, gloo on CPU). A killed run loses at most the steps since the last checkpoint and resumes
with the same optimizer, scheduler, scaler, RNG and data order: batches come from
``BucketBatchSampler`` (a function of seed and epoch), a resumed epoch skips the batches already
seen, and augmentation is seeded per sample from (seed, epoch, index) (``LmdbDataset.set_epoch``;
a ``synth:`` source renders each sample from them too: ``crnn_ocr.synth.online``), so with a
fixed seed a resumed run's losses equal an uninterrupted run's (see RELIABILITY.md).
SIGINT/SIGTERM finish the current step, save ``last.pt`` and raise ``Interrupted``.
With ``ema`` (``--ema``) an exponential moving average of the weights is what validation reads and
checkpoints hold as ``model`` (the weights the optimizer steps as ``train_model``, for resuming).
"""

from __future__ import annotations

import math
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader
from tqdm import tqdm

from crnn_ocr.checkpoint import remove_stale_temporaries, save_checkpoint
from crnn_ocr.engine.config import TrainConfig, check_config, total_steps
from crnn_ocr.engine.inputs import TrainData, build_datasets, epoch_loader
from crnn_ocr.engine.log import CsvLog
from crnn_ocr.engine.optim import make_optimizer, make_scheduler
from crnn_ocr.engine.runtime import rng_state, seed_everything, set_rng_state, start_process, stop_signals
from crnn_ocr.engine.start import RunSpec, resolve_start, start_weights
from crnn_ocr.model import build_model
from crnn_ocr.tasks import Task, task_for_kind
from crnn_ocr.torch_backend import SLOW_BF16, native_bf16


@dataclass
class TrainResult:
    """What a finished run reports."""

    step: int
    last_checkpoint: str
    best_checkpoint: str | None
    best_metric: float | None
    final_loss: float  # the mean training loss of the last log interval (--log-every steps)
    skipped_nonfinite: int
    model: nn.Module | None = None  # the trained model (unwrapped from DDP)
    skipped_corrupt: int = 0  # samples whose image failed to decode at read time (all ranks, this run)
    best_name: str = "val word accuracy"  # what best_metric measures (the task's)


class TrainingStopped(RuntimeError):
    """Training cannot go on (persistent NaN/inf loss, or no sample of an epoch could be read);
    the message names the step and batch."""


class Interrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM stopped the run after its checkpoint was saved."""

    def __init__(self, signum: int, step: int, checkpoint: str) -> None:
        super().__init__(f"stopped by signal {signum} at step {step}; checkpoint saved to {checkpoint}")
        self.signum, self.step, self.checkpoint = signum, step, checkpoint


@dataclass
class Run:
    """What the steps work on, and where the run stands; ``checkpoint()`` is what last.pt and best.pt hold."""

    cfg: TrainConfig
    spec: RunSpec
    device: torch.device
    world: int
    is_main: bool
    model: nn.Module  # what the steps call: the DDP wrapper under torchrun
    core: nn.Module  # the model itself
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    channels_last: bool  # NHWC model and batches (cfg.channels_last, or on CUDA)
    total_steps: int
    task: Task
    task_state: dict[str, Any]  # the task's plain data saved beside the weights (a tagger's thresholds)
    ema: AveragedModel | None = None  # --ema: the moving average of core's weights (and BN statistics)
    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0  # batches of this epoch read so far (a resumed epoch skips them)
    best_metric: float | None = None
    loss_sum: float = 0.0  # the finite losses since the last log row, and how many
    loss_count: int = 0
    interval_loss: float = math.nan  # their mean at the last log row: what the log, the bar and the result show
    skipped_nonfinite: int = 0
    bad_in_row: int = 0
    corrupt: int = 0  # images that failed to decode at read time

    @property
    def out_dir(self) -> Path:
        return Path(self.cfg.out_dir)

    @property
    def last_path(self) -> Path:
        return self.out_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.out_dir / "best.pt"

    def autocast(self) -> AbstractContextManager[Any]:
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    @property
    def evaluated(self) -> nn.Module:
        """The model validation reads and checkpoints call ``model``: the average with --ema, else ``core``."""
        return self.ema.module if self.ema is not None else self.core

    def checkpoint(self) -> dict[str, Any]:
        averaged = {} if self.ema is None else {"train_model": self.core.state_dict(), "ema_updates": int(self.ema.n_averaged)}
        return {
            "kind": self.cfg.kind,
            "model_config": self.spec.model_config.to_dict(),
            "alphabet": self.spec.alphabet.to_dict(),
            "frontend": self.spec.frontend.to_dict(),
            "model": self.evaluated.state_dict(),
            **averaged,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "step": self.step,
            "epoch": self.epoch,
            "batches_in_epoch": self.batches_in_epoch,
            "rng": rng_state(),
            "train_config": self.cfg.to_dict(),
            "best_metric": self.best_metric,
            **self.task_state,
        }


class _Throughput:
    """Images per second since the last ``per_second()``."""

    def __init__(self) -> None:
        self.since, self.seen = time.perf_counter(), 0

    def add(self, images: int) -> None:
        self.seen += images

    def per_second(self) -> float:
        now = time.perf_counter()
        rate = self.seen / max(now - self.since, 1e-9)
        self.since, self.seen = now, 0
        return rate


# --------------------------------------------------------------------------- the run
def train(cfg: TrainConfig) -> TrainResult:
    """Train a CRNN as ``cfg`` says; returns where the checkpoints are."""
    check_config(cfg)
    rank, world, device = start_process(cfg.device)
    spec = resolve_start(cfg)  # fresh, resumed or initialised: every inherited setting is decided here
    seed_everything(cfg.seed + rank)
    data = build_datasets(cfg, spec, rank=rank, world=world, main=rank == 0)
    run = set_up(cfg, spec, device, world, rank == 0, total_steps(cfg, len(data.sampler)))
    log = open_run_folder(run) if run.is_main else None
    with stop_signals() as stop, tqdm(total=run.total_steps, initial=run.step, disable=not (cfg.progress and run.is_main),
                                      dynamic_ncols=True, unit="step") as bar:
        run.model.train()
        throughput = _Throughput()
        while run.step < run.total_steps and not stop:
            train_epoch(run, data, log, bar, stop, throughput)
    return finish(run, log, stop)


def set_up(cfg: TrainConfig, spec: RunSpec, device: torch.device, world: int, is_main: bool, steps: int) -> Run:
    """The model with the weights ``spec`` starts from, wrapped for DDP, its optimizer, schedule
    and gradient scaler; a resumed run's optimizer, scheduler, scaler and RNG as they were saved."""
    model = build_model(spec.model_config)
    init_line = start_weights(model, spec, cfg.init_from)
    if init_line and is_main:
        print(init_line, flush=True)
    model.to(device)
    channels_last = device.type == "cuda" if cfg.channels_last is None else cfg.channels_last
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    core = model
    if world > 1:
        if device.type == "cuda":  # batch statistics over all ranks (SyncBatchNorm has no CPU kernel)
            model = core = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer, peak_lr = make_optimizer(cfg.optimizer, core.parameters(), cfg.lr, cfg.weight_decay)
    scheduler = make_scheduler(cfg.schedule, optimizer, steps, peak_lr, cfg.warmup_steps)
    use_fp16 = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_fp16)
    amp_dtype = torch.float16 if use_fp16 else (torch.bfloat16 if cfg.bf16 else None)
    if amp_dtype is torch.bfloat16 and is_main and not native_bf16(device):
        print(f"warning: --bf16: {SLOW_BF16}; leave it off on this machine", flush=True)
    task = task_for_kind(cfg.kind)
    task_state = {k: spec.state[k] for k in task.state_keys if spec.resuming and k in spec.state}
    ema = make_ema(core, cfg.ema) if cfg.ema > 0 else None
    run = Run(cfg=cfg, spec=spec, device=device, world=world, is_main=is_main, model=model, core=core, optimizer=optimizer,
              scheduler=scheduler, scaler=scaler, amp_dtype=amp_dtype, channels_last=channels_last, total_steps=steps, task=task, task_state=task_state,
              ema=ema, step=spec.step, epoch=spec.epoch, batches_in_epoch=spec.batches_in_epoch, best_metric=spec.best_metric)
    if spec.resuming:
        state = spec.state
        if ema is not None and "train_model" in state:  # the average goes on where it stopped (else it starts now)
            ema.module.load_state_dict(state["model"])
            ema.n_averaged.fill_(int(state.get("ema_updates", 0)))
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        if state.get("rng") is not None and world == 1:  # under DDP each rank was seeded with seed + rank
            set_rng_state(state["rng"])
        if is_main:
            print(f"resumed from step {run.step} (epoch {run.epoch}, batch {run.batches_in_epoch})", flush=True)
    return run


def make_ema(core: nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of ``core``'s weights and buffers (BatchNorm statistics), updated
    after every optimizer step: the first update copies the weights, the n-th (n = 1, 2, ...) moves the
    average ``1 - min(decay, (1 + n) / (10 + n))`` of the way to them, so an early average does not
    keep the starting weights for thousands of steps (the warm-up of TensorFlow's and timm's EMA)."""

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
        n = int(n_averaged)
        d = min(decay, (1 + n) / (10 + n))
        if torch.is_floating_point(averaged[0]):
            torch._foreach_lerp_(averaged, current, 1 - d)
        else:  # integer buffers (BatchNorm's batch count): the current value
            for a, c in zip(averaged, current, strict=True):
                a.copy_(c)

    return AveragedModel(core, multi_avg_fn=update, use_buffers=True)


def open_run_folder(run: Run) -> CsvLog:
    """The output folder, cleared of a killed save's partial files; ``log.csv`` and the labels
    (``alphabet.txt``; a classifier's ``classes.txt``)."""
    run.out_dir.mkdir(parents=True, exist_ok=True)
    for path in (run.last_path, run.best_path):
        remove_stale_temporaries(path)
    log = CsvLog(run.out_dir / "log.csv", run.step if run.spec.resuming else None, run.task.log_columns)
    run.spec.alphabet.save(run.out_dir / run.task.labels_file)
    return log


def train_epoch(run: Run, data: TrainData, log: CsvLog | None, bar: tqdm, stop: list[int], throughput: _Throughput) -> None:
    """The rest of the current epoch, step by step, until it ends, the run's steps are done or a
    signal came; an epoch of which no image could be decoded is a ``TrainingStopped``."""
    loader = epoch_loader(data, run.cfg, run.epoch, run.batches_in_epoch, run.device)
    finished_epoch, batches_read, usable_batches = False, 0, 0
    try:
        for batch in loader:
            run.batches_in_epoch += 1
            batches_read += 1
            run.corrupt += batch["num_corrupt"]
            if len(batch["labels"]) == 0:  # every image of the batch failed to decode
                continue
            usable_batches += 1
            outputs = train_step(run, batch)
            if outputs is None:  # NaN/inf loss: no step
                continue
            throughput.add(len(batch["labels"]) * run.world)
            bar.update(1)
            after_step(run, batch, outputs, data.val_loader, log, bar, throughput)
            if run.step >= run.total_steps or stop:
                break
        else:
            finished_epoch = True
    except Exception:
        if not stop:  # a signal can break DataLoader workers mid-epoch; the state is still consistent
            raise
    if not finished_epoch and run.batches_in_epoch >= len(data.sampler):
        finished_epoch = True  # stopped (a signal, the last step) on the epoch's last batch: a resume starts the next
    if finished_epoch:
        if batches_read and not usable_batches:
            raise TrainingStopped(
                f"epoch {run.epoch}: no image of the {batches_read} batches read could be decoded "
                f"({run.corrupt} corrupt images so far): check --data {' '.join(run.cfg.data)}"
            )
        run.epoch += 1
        run.batches_in_epoch = 0


def train_step(run: Run, batch: dict[str, Any]) -> Any:
    """Forward and the task's loss (CTC: ``CTCTask.training_loss``), backward, clip, optimizer
    step -> the task's outputs for ``batch_accuracy`` (CTC: logits (N, T, K), frames per sample (N,)).
    None when the loss is NaN/inf: the step is skipped, and ``max_bad_steps`` in a row stop the run."""
    images = batch["images"].to(run.device, non_blocking=True)
    if run.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    loss, outputs = run.task.training_loss(run, images, batch)
    if not torch.isfinite(loss):
        run.skipped_nonfinite += 1
        run.bad_in_row += 1
        run.optimizer.zero_grad(set_to_none=True)
        if run.bad_in_row >= run.cfg.max_bad_steps:
            raise TrainingStopped(
                f"loss was NaN/inf for {run.bad_in_row} steps in a row (step {run.step}, epoch {run.epoch}, "
                f"batch {run.batches_in_epoch - 1}): lower --lr, check the data, or disable --bf16"
            )
        return None
    run.bad_in_row = 0
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    if run.cfg.grad_clip > 0:
        run.scaler.unscale_(run.optimizer)
        nn.utils.clip_grad_norm_(run.core.parameters(), run.cfg.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    if run.ema is not None:
        run.ema.update_parameters(run.core)
    run.scheduler.step()
    run.step += 1
    run.loss_sum += float(loss.detach())
    run.loss_count += 1
    return outputs


def after_step(run: Run, batch: dict[str, Any], outputs: Any, val_loader: DataLoader | None,
               log: CsvLog | None, bar: tqdm, throughput: _Throughput) -> None:
    """Every ``log_every`` steps a log row (loss, batch accuracy, images/s); every ``val_every``
    validation (a better score -- CTC: word accuracy -- saves best.pt); every ``save_every`` last.pt;
    every ``keep_every`` a kept copy, step-%07d.pt."""
    cfg, step = run.cfg, run.step
    logs = step % cfg.log_every == 0 or step == run.total_steps
    if logs and run.loss_count:  # every rank: one batch's loss swings 2x on mixed data; the interval's mean is the curve
        run.interval_loss, run.loss_sum, run.loss_count = run.loss_sum / run.loss_count, 0.0, 0
    if run.is_main and logs:
        acc = run.task.batch_accuracy(outputs, batch, run.spec)
        ips = throughput.per_second()
        bar.set_postfix(loss=f"{run.interval_loss:.3f}", acc=f"{acc:.2f}", img_s=f"{ips:.0f}")
        log.write(step=step, epoch=run.epoch, lr=f"{run.scheduler.get_last_lr()[0]:.3g}", loss=f"{run.interval_loss:.5f}",
                  train_acc=f"{acc:.4f}", images_per_s=f"{ips:.1f}")
    if val_loader is not None and (step % cfg.val_every == 0 or step == run.total_steps):
        v = run.task.validate(run.evaluated, val_loader, run.spec, run.device, run.autocast)
        log.write(step=step, epoch=run.epoch, **v.row)
        bar.write(f"step {step}: {v.line}")
        run.task_state.update(v.state)
        if run.best_metric is None or v.best > run.best_metric:
            run.best_metric = v.best
            save_checkpoint(run.best_path, run.checkpoint())
            for name, text in v.files.items():
                (run.out_dir / name).write_text(text, encoding="utf-8")
        log.plot(run.out_dir / "curves.png")
    saves, keeps = step % cfg.save_every == 0, bool(cfg.keep_every) and step % cfg.keep_every == 0
    if run.is_main and (saves or keeps):
        checkpoint = run.checkpoint()  # once, when last.pt and a kept copy fall on the same step
        if saves:
            save_checkpoint(run.last_path, checkpoint)
        if keeps:
            save_checkpoint(run.out_dir / f"step-{step:07d}.pt", checkpoint)


def finish(run: Run, log: CsvLog | None, stop: list[int]) -> TrainResult:
    """Save last.pt (and the curves), report what was skipped; ``Interrupted`` after a signal."""
    if run.world > 1:  # every rank read different samples
        counts = torch.tensor([run.corrupt], device=run.device)
        dist.all_reduce(counts)
        run.corrupt = int(counts[0])
    if run.is_main:
        save_checkpoint(run.last_path, run.checkpoint())
        if log is not None and not (run.out_dir / "curves.png").exists():
            log.plot(run.out_dir / "curves.png")
        if run.corrupt:
            print(f"skipped {run.corrupt} corrupt images at read time (header readable, pixels not)", flush=True)
        if run.skipped_nonfinite:
            print(f"skipped {run.skipped_nonfinite} steps with a NaN/inf loss", flush=True)
    if run.world > 1:
        dist.barrier()
    if stop:
        raise Interrupted(stop[0], run.step, str(run.last_path))
    return TrainResult(
        step=run.step,
        last_checkpoint=str(run.last_path),
        best_checkpoint=str(run.best_path) if run.best_path.exists() else None,
        best_metric=run.best_metric,
        final_loss=run.interval_loss,
        skipped_nonfinite=run.skipped_nonfinite,
        model=run.evaluated,
        skipped_corrupt=run.corrupt,
        best_name=run.task.best_name,
    )
