"""The trainer: one loop for every domain (text, music staves, speech).

Reads top to bottom: set-up (device, distributed, data, model, optimizer), then the step loop
(forward, CTC loss, backward, clip, step), periodic validation and checkpoints. Launch with
``torchrun --nproc_per_node=N tools/train.py ...`` for DistributedDataParallel (NCCL on CUDA,
gloo on CPU). A killed run loses at most the steps since the last checkpoint and resumes with
the same optimizer, scheduler, scaler, RNG and data order: batches come from
``BucketBatchSampler`` (a function of seed and epoch), a resumed epoch skips the batches already
seen, and augmentation is seeded per sample from (seed, epoch, index) (``LmdbDataset.set_epoch``),
so with a fixed seed a resumed run's losses equal an uninterrupted run's (see RELIABILITY.md).
SIGINT/SIGTERM finish the current step, save ``last.pt`` and raise ``Interrupted``.
"""

from __future__ import annotations

import csv
import math
import os
import random
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from crnn_ocr.alphabet import BLANK, Alphabet
from crnn_ocr.checkpoint import load_checkpoint, remove_stale_temporaries, save_checkpoint
from crnn_ocr.data import BucketBatchSampler, LmdbDataset, collate_batch
from crnn_ocr.frontend import Frontend, ImageFrontend, frontend_from_dict, stored_frontend
from crnn_ocr.metrics import compute_metrics
from crnn_ocr.model import ModelConfig, build_model, output_length, output_lengths


@dataclass
class TrainConfig:
    """Everything a training run needs; ``tools/train.py`` fills it from the command line."""

    data: list[str]
    val: list[str] = field(default_factory=list)
    data_ratios: list[float] | None = None
    alphabet: str | None = None  # a preset or file; None: the --init-from checkpoint's, else "alphanumeric"
    arch: str = "crnn_compact"
    height: int | None = None  # default 32, or the --init-from checkpoint's
    channels: int = 1
    max_width: int = 400
    width_scale: float | None = None  # images: horizontal stretch (resize_to_height); default 1, or a same-kind --init-from checkpoint's
    hidden_size: int | None = None
    kind: str = "text"
    sample_rate: int = 16000  # speech: the front-end's rate (audio is resampled to it)
    n_mels: int | None = None  # speech: mel bins, the model's input height (replaces ``height``); default 64 or the init's
    batch_size: int = 64
    optimizer: str = "adamw"  # "adamw" or "adadelta" (the paper's)
    lr: float | None = None  # default: 1e-3 for AdamW, 1.0 for Adadelta
    weight_decay: float = 1e-4
    schedule: str = "onecycle"  # "onecycle", "cosine", "constant"
    warmup_steps: int | None = None  # default: 5% of the steps (cosine); onecycle has its own warm-up
    grad_clip: float = 5.0
    max_steps: int | None = None
    epochs: int | None = None
    val_every: int = 500
    save_every: int = 500
    log_every: int = 20
    out_dir: str = "runs/crnn"
    resume: str | None = None  # a checkpoint path, or "auto" for out_dir/last.pt if it exists
    init_from: str | None = None  # weights only; the output layer is resized to a new alphabet
    seed: int = 0
    num_workers: int = 2
    augment: bool = True
    amp: bool = True  # float16 autocast + GradScaler on CUDA
    bf16: bool = False  # bfloat16 autocast on CPU
    device: str | None = None
    progress: bool = True
    max_bad_steps: int = 20  # consecutive non-finite losses before giving up
    mask_padding: bool = True  # the model sees each image's true width (CRNN.forward); False: the old unmasked forward, for ablations

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class TrainResult:
    """What a finished run reports."""

    step: int
    last_checkpoint: str
    best_checkpoint: str | None
    best_metric: float | None
    final_loss: float
    skipped_nonfinite: int
    model: nn.Module | None = None  # the trained model (unwrapped from DDP)
    skipped_corrupt: int = 0  # samples whose image failed to decode at read time (all ranks, this run)


class TrainingStopped(RuntimeError):
    """Training cannot go on (persistent NaN/inf loss, or no sample of an epoch could be read);
    the message names the step and batch."""


class Interrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM stopped the run after its checkpoint was saved."""

    def __init__(self, signum: int, step: int, checkpoint: str) -> None:
        super().__init__(f"stopped by signal {signum} at step {step}; checkpoint saved to {checkpoint}")
        self.signum, self.step, self.checkpoint = signum, step, checkpoint


# --------------------------------------------------------------------------- set-up helpers
def _distributed_env() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from torchrun's environment; (0, 0, 1) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 0, 1
    return int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")), world


def choose_device(requested: str | None, local_rank: int = 0) -> torch.device:
    """The device, chosen once: ``requested``, else CUDA (this process's GPU) when present, else CPU."""
    if requested:
        dev = torch.device(requested)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device {requested}: CUDA is not available on this machine")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def _rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states as plain data (loadable with weights_only=True)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    p = state["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resize_output_layer(
    state_dict: dict[str, torch.Tensor], old: Alphabet, new: Alphabet, model: nn.Module, *, fresh: list[str] | None = None
) -> dict[str, torch.Tensor]:
    """Adapt a state dict trained on ``old`` to ``new``: rows of the classifier for the blank and
    for symbols both alphabets share are kept, the rest come from ``model``'s fresh init. When
    ``old`` ignores case, both cases of a letter start from its row (fine-tuning then learns to
    tell them apart).

    Any other layer whose shape differs (or that only one side has) is a ``ValueError``, unless
    ``fresh`` is a list: then such layers keep ``model``'s fresh init and their names are appended
    to it (e.g. a 64 px model started from a 32 px one: every convolution and LSTM fits, the
    projection of the taller feature map is new)."""
    model_state = model.state_dict()
    out = {k: v for k, v in state_dict.items() if k in model_state or fresh is None}
    for key, value in model_state.items():
        src = state_dict.get(key)
        if src is not None and src.shape == value.shape:
            continue
        if src is not None and src.dim() >= 1 and src.shape[0] == old.num_classes and value.shape[0] == new.num_classes \
                and src.shape[1:] == value.shape[1:]:
            merged = value.clone()
            merged[BLANK] = src[BLANK]
            for sym in new.symbols:
                source = sym if sym in old else sym.lower() if old.ignore_case and sym.lower() in old else None
                if source is not None:
                    merged[new.id_of(sym)] = src[old.id_of(source)]
            out[key] = merged
        elif fresh is not None:
            out[key] = value
            fresh.append(key)
        elif src is None:
            continue  # load_state_dict names the missing key
        else:
            raise ValueError(f"cannot adapt layer {key}: checkpoint shape {tuple(src.shape)}, model shape {tuple(value.shape)}")
    return out


class _SkipBatches(torch.utils.data.Sampler):
    """Batch sampler that skips the first ``skip`` batches of an epoch (mid-epoch resume)."""

    def __init__(self, sampler: BucketBatchSampler, skip: int) -> None:
        self.sampler, self.skip = sampler, skip

    def __iter__(self) -> Iterator[list[int]]:
        for i, batch in enumerate(self.sampler):
            if i >= self.skip:
                yield batch

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.skip)


def _make_scheduler(name: str, optimizer: torch.optim.Optimizer, total_steps: int, lr: float, warmup: int | None):
    if name == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(total_steps, 2), pct_start=0.15, cycle_momentum=False)
    if name == "cosine":
        warm = warmup if warmup is not None else max(1, total_steps // 20)

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            progress = min(1.0, (step - warm) / max(1, total_steps - warm))
            return 0.5 * (1 + math.cos(math.pi * progress))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    raise ValueError(f"unknown schedule {name!r}: choose onecycle, cosine or constant")


def _make_optimizer(name: str, params, lr: float | None, weight_decay: float) -> tuple[torch.optim.Optimizer, float]:
    if name == "adamw":
        lr = 1e-3 if lr is None else lr
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay), lr
    if name == "adadelta":
        lr = 1.0 if lr is None else lr
        return torch.optim.Adadelta(params, lr=lr, rho=0.9), lr
    raise ValueError(f"unknown optimizer {name!r}: choose adamw or adadelta")


def greedy_ids(logits: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
    """Best-path decoding on a batch of logits (N, T, C) for training-time accuracy."""
    best = logits.argmax(-1).cpu()  # (N, T)
    out = []
    for row, n in zip(best.tolist(), lengths.tolist()):
        ids, prev = [], BLANK
        for t in row[:n]:
            if t != prev and t != BLANK:
                ids.append(t)
            prev = t
        out.append(ids)
    return out


def ctc_loss(logits: torch.Tensor, targets: torch.Tensor, input_lengths: torch.Tensor, target_lengths: torch.Tensor) -> torch.Tensor:
    """Mean CTC loss (per target symbol, as torch's ``reduction='mean'``) from logits (N, T, C)."""
    log_probs = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)  # (N, T, C) -> (T, N, C)
    return F.ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=BLANK, reduction="mean", zero_infinity=True)


# --------------------------------------------------------------------------- logging
class _CsvLog:
    COLUMNS = ["step", "epoch", "lr", "loss", "train_acc", "images_per_s", "val_loss", "val_acc", "val_cer"]

    def __init__(self, path: Path, resume_step: int | None) -> None:
        self.path = path
        rows = []
        if resume_step is not None and path.exists():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        tmp = path.with_suffix(".tmp.csv")  # a kill while rewriting must not lose the history
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, self.COLUMNS)
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, path)

    def write(self, **row: Any) -> None:
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.COLUMNS).writerow({k: row.get(k, "") for k in self.COLUMNS})

    def plot(self, png: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        with open(self.path, newline="") as f:
            rows = list(csv.DictReader(f))
        train = [(int(r["step"]), float(r["loss"])) for r in rows if r["loss"]]
        val = [(int(r["step"]), float(r["val_acc"]), float(r["val_cer"])) for r in rows if r["val_acc"]]
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
        if train:
            ax1.plot(*zip(*train), label="train loss")
        vl = [(int(r["step"]), float(r["val_loss"])) for r in rows if r["val_loss"]]
        if vl:
            ax1.plot(*zip(*vl), "o-", label="val loss")
        ax1.set_xlabel("step"), ax1.set_yscale("log"), ax1.set_title("CTC loss")
        if val:
            s, acc, cer = zip(*val)
            ax2.plot(s, acc, "o-", label="word accuracy")
            ax2.plot(s, cer, "s-", label="CER")
        ax2.set_xlabel("step"), ax2.set_ylim(0, 1), ax2.set_title("validation")
        for ax in (ax1, ax2):
            if ax.lines:
                ax.legend()
        fig.tight_layout()
        tmp = png.with_suffix(".tmp.png")
        fig.savefig(tmp, dpi=80)
        plt.close(fig)
        os.replace(tmp, png)


# --------------------------------------------------------------------------- evaluation
@torch.inference_mode()
def evaluate_loader(model: nn.Module, loader, alphabet: Alphabet, config: ModelConfig, device: torch.device, autocast) -> dict[str, float]:
    """Validation loss, word accuracy and CER (greedy decoding) over a loader."""
    was_training = model.training
    model.eval()
    preds: list[str] = []
    refs: list[str] = []
    loss_sum, loss_n = 0.0, 0
    for batch in loader:
        if batch is None or len(batch["labels"]) == 0:
            continue
        images = batch["images"].to(device, non_blocking=True)
        with autocast():
            logits = model(images, batch["input_widths"])  # (N, C, H, W), true widths (N,) -> (N, T, K)
        in_len = output_lengths(batch["input_widths"], config).clamp(max=logits.shape[1])
        loss = ctc_loss(logits, batch["targets"].to(device), in_len.to(device), batch["target_lengths"].to(device))
        loss_sum += float(loss) * len(batch["labels"])
        loss_n += len(batch["labels"])
        preds += [alphabet.decode(ids) for ids in greedy_ids(logits.float(), in_len)]
        refs += [alphabet.decode(alphabet.encode(lbl)) for lbl in batch["labels"]]
    model.train(was_training)
    tokenize = str.split if alphabet.is_tokenized else list
    m = compute_metrics(preds, refs, tokenize=tokenize)
    return {"val_loss": loss_sum / max(loss_n, 1), "val_acc": m.word_accuracy, "val_cer": m.cer, "count": m.count}


# --------------------------------------------------------------------------- the run
def train(cfg: TrainConfig) -> TrainResult:
    """Train a CRNN as ``cfg`` says; returns where the checkpoints are."""
    if not cfg.data:
        raise ValueError("--data: give at least one LMDB")
    if cfg.max_steps is None and cfg.epochs is None:
        raise ValueError("give --max-steps or --epochs")
    rank, local_rank, world = _distributed_env()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() and cfg.device != "cpu" else "gloo")
    is_main = rank == 0
    device = choose_device(cfg.device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    out_dir = Path(cfg.out_dir)
    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"

    # ---- what we start from
    resume_state = None
    if cfg.resume:
        resume_file = last_path if cfg.resume == "auto" else Path(cfg.resume)
        if cfg.resume != "auto" or resume_file.exists():
            resume_state = load_checkpoint(resume_file)
    init_state = load_checkpoint(cfg.init_from) if cfg.init_from and resume_state is None else None

    # speech: a log-mel front-end (the speech wing's "audio" kind) makes 1 x n_mels x frames "images"
    # (the checkpoint keeps its settings)
    audio: Frontend | None = None
    if cfg.kind == "speech":
        start = resume_state or init_state
        stored = stored_frontend(start) if start is not None else None
        if stored is not None and stored.kind == "audio" and (resume_state is not None or cfg.n_mels in (None, stored.height)):
            audio = stored
        else:
            audio = frontend_from_dict({"kind": "audio", "sample_rate": cfg.sample_rate, "n_mels": cfg.n_mels or 64})
    if resume_state is not None:
        alphabet = Alphabet.from_dict(resume_state["alphabet"])
        model_config = ModelConfig.from_dict(resume_state["model_config"])
    else:
        if cfg.alphabet is not None:
            alphabet = Alphabet.resolve(cfg.alphabet)
        else:  # fine-tuning keeps the model's symbols unless told otherwise
            alphabet = Alphabet.from_dict(init_state["alphabet"]) if init_state else Alphabet.preset("alphanumeric")
        base = ModelConfig.from_dict(init_state["model_config"]) if init_state else None
        model_config = ModelConfig(
            num_classes=alphabet.num_classes,
            arch=base.arch if base else cfg.arch,
            in_channels=base.in_channels if base else (1 if audio else cfg.channels),
            height=audio.height if audio else cfg.height or (base.height if base else 32),
            **({"hidden_size": base.hidden_size} if base else ({"hidden_size": cfg.hidden_size} if cfg.hidden_size else {})),
        )
    height, channels = model_config.height, model_config.in_channels
    # width scale: a resumed run keeps its own; else the config's, else a same-kind init's (a score model from a text one starts at 1)
    inherit = resume_state if resume_state is not None else (
        init_state if cfg.width_scale is None and init_state is not None and init_state.get("kind", "text") == cfg.kind else None)
    if audio is not None:  # spectrogram frames are not stretched
        frontend = frontend_from_dict({**audio.to_dict(), "max_width": cfg.max_width})
    else:
        width_scale = stored_frontend(inherit).width_scale if inherit else float(cfg.width_scale or 1.0)
        frontend = ImageFrontend(height=height, channels=channels, max_width=cfg.max_width, width_scale=width_scale)
    _seed_everything(cfg.seed + rank)

    # ---- data
    def min_frames(width: int) -> int:
        return int(output_length(width, model_config))

    train_sets = [LmdbDataset(p, alphabet, frontend, augment=cfg.augment, min_frames_fn=min_frames, seed=cfg.seed) for p in cfg.data]
    if is_main:
        for p, ds in zip(cfg.data, train_sets):
            print(f"train {p}: {ds.summary()}", flush=True)
    train_set = torch.utils.data.ConcatDataset(train_sets) if len(train_sets) > 1 else train_sets[0]
    widths = [w for ds in train_sets for w in ds.widths]
    sampler = BucketBatchSampler(
        widths, cfg.batch_size, shuffle=True, seed=cfg.seed, drop_last=True, rank=rank, world_size=world,
        group_sizes=[len(ds) for ds in train_sets], ratios=cfg.data_ratios,
    )
    if len(sampler) == 0:
        raise ValueError(f"--batch-size {cfg.batch_size}: larger than the training data ({len(widths)} usable samples per epoch)")
    val_loader = None
    if cfg.val and is_main:
        val_sets = [LmdbDataset(p, alphabet, frontend, augment=False, min_frames_fn=min_frames) for p in cfg.val]
        for p, ds in zip(cfg.val, val_sets):
            print(f"val {p}: {ds.summary()}", flush=True)
        val_set = torch.utils.data.ConcatDataset(val_sets) if len(val_sets) > 1 else val_sets[0]
        val_widths = [w for ds in val_sets for w in ds.widths]
        val_loader = torch.utils.data.DataLoader(
            val_set, batch_sampler=BucketBatchSampler(val_widths, cfg.batch_size, shuffle=False, seed=0, drop_last=False),
            collate_fn=collate_batch, num_workers=min(cfg.num_workers, 2),
        )

    steps_per_epoch = len(sampler)
    total_steps = cfg.max_steps if cfg.max_steps is not None else cfg.epochs * steps_per_epoch
    if cfg.max_steps is not None and cfg.epochs is not None:
        total_steps = min(cfg.max_steps, cfg.epochs * steps_per_epoch)

    # ---- model, optimizer
    model = build_model(model_config)
    if resume_state is not None:
        model.load_state_dict(resume_state["model"])
    elif init_state is not None:
        old_alphabet = Alphabet.from_dict(init_state["alphabet"])
        fresh: list[str] = []
        model.load_state_dict(resize_output_layer(init_state["model"], old_alphabet, alphabet, model, fresh=fresh))
        if is_main:
            kept = len(model.state_dict()) - len(fresh)
            resized = f"; output layer {old_alphabet.num_classes} -> {alphabet.num_classes} classes" \
                if old_alphabet != alphabet else ""
            new = f"; fresh: {', '.join(fresh)}" if fresh else ""
            print(f"init from {cfg.init_from}: {kept} of {len(model.state_dict())} tensors kept{resized}{new}", flush=True)
    model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    core_model = model
    if world > 1:
        if device.type == "cuda":  # batch statistics over all ranks (SyncBatchNorm has no CPU kernel)
            model = core_model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer, peak_lr = _make_optimizer(cfg.optimizer, core_model.parameters(), cfg.lr, cfg.weight_decay)
    scheduler = _make_scheduler(cfg.schedule, optimizer, total_steps, peak_lr, cfg.warmup_steps)
    use_fp16 = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_fp16)
    amp_dtype = torch.float16 if use_fp16 else (torch.bfloat16 if cfg.bf16 else None)

    def autocast():
        return torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)

    step, epoch, batches_in_epoch, best_metric = 0, 0, 0, None
    if resume_state is not None:
        optimizer.load_state_dict(resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
        if resume_state.get("scaler"):
            scaler.load_state_dict(resume_state["scaler"])
        step, epoch = int(resume_state["step"]), int(resume_state["epoch"])
        batches_in_epoch = int(resume_state["batches_in_epoch"])
        best_metric = resume_state.get("best_metric")
        rng = resume_state.get("rng")
        if rng is not None and world == 1:
            _set_rng_state(rng)
        if is_main:
            print(f"resumed from step {step} (epoch {epoch}, batch {batches_in_epoch})", flush=True)

    log = None
    if is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        for path in (last_path, best_path):  # partial files of a run killed while saving
            remove_stale_temporaries(path)
        log = _CsvLog(out_dir / "log.csv", step if resume_state is not None else None)
        alphabet.save(out_dir / "alphabet.txt")

    def checkpoint_state() -> dict[str, Any]:
        return {
            "kind": cfg.kind,
            "model_config": model_config.to_dict(),
            "alphabet": alphabet.to_dict(),
            "frontend": frontend.to_dict(),
            "model": core_model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if use_fp16 else None,
            "step": step,
            "epoch": epoch,
            "batches_in_epoch": batches_in_epoch,
            "rng": _rng_state(),
            "train_config": cfg.to_dict(),
            "best_metric": best_metric,
        }

    # ---- signals: save, then stop
    stop_signal: list[int] = []
    previous_handlers = {}
    if is_main or world > 1:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                previous_handlers[sig] = signal.signal(sig, lambda s, f: stop_signal.append(s))
            except ValueError:  # not the main thread
                pass

    from tqdm import tqdm

    bar = tqdm(total=total_steps, initial=step, disable=not (cfg.progress and is_main), dynamic_ncols=True, unit="step")
    model.train()
    last_loss, skipped_nonfinite, bad_in_row = float("nan"), 0, 0
    t_last, seen_since = time.perf_counter(), 0
    corrupt_total = 0
    try:
        while step < total_steps and not stop_signal:
            sampler.set_epoch(epoch)
            for ds in train_sets:
                ds.set_epoch(epoch)  # before the workers start: they get a copy
            batch_sampler = _SkipBatches(sampler, batches_in_epoch) if batches_in_epoch else sampler
            loader = torch.utils.data.DataLoader(
                train_set, batch_sampler=batch_sampler, collate_fn=collate_batch, num_workers=cfg.num_workers,
                pin_memory=device.type == "cuda", persistent_workers=False,
                # its own generator: starting the loader must not draw from the global RNG, or a
                # resumed epoch (one more loader start) would shift dropout's random stream
                generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch),
            )
            finished_epoch, batches_read, usable_batches = False, 0, 0
            try:
                for batch in loader:
                    batches_in_epoch += 1
                    batches_read += 1
                    corrupt_total += batch["num_corrupt"]
                    if len(batch["labels"]) == 0:  # every image of the batch failed to decode
                        continue
                    usable_batches += 1
                    images = batch["images"].to(device, non_blocking=True)
                    if device.type == "cuda":
                        images = images.contiguous(memory_format=torch.channels_last)
                    targets = batch["targets"].to(device)
                    target_lengths = batch["target_lengths"].to(device)
                    with autocast():  # the padding is masked: each image trains as it is read alone
                        logits = model(images, batch["input_widths"] if cfg.mask_padding else None)  # (N, C, H, W), (N,) -> (N, T, K)
                    input_lengths = output_lengths(batch["input_widths"], model_config).clamp(max=logits.shape[1]).to(device)
                    loss = ctc_loss(logits, targets, input_lengths, target_lengths)
                    if not torch.isfinite(loss):
                        skipped_nonfinite += 1
                        bad_in_row += 1
                        optimizer.zero_grad(set_to_none=True)
                        if bad_in_row >= cfg.max_bad_steps:
                            raise TrainingStopped(
                                f"loss was NaN/inf for {bad_in_row} steps in a row (step {step}, epoch {epoch}, batch {batches_in_epoch - 1}): "
                                "lower --lr, check the data, or disable --bf16"
                            )
                        continue
                    bad_in_row = 0
                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    if cfg.grad_clip > 0:
                        scaler.unscale_(optimizer)
                        nn.utils.clip_grad_norm_(core_model.parameters(), cfg.grad_clip)
                    scaler.step(optimizer)
                    scaler.update()
                    scheduler.step()
                    step += 1
                    last_loss = float(loss.detach())
                    seen_since += len(batch["labels"]) * world
                    bar.update(1)

                    if is_main and (step % cfg.log_every == 0 or step == total_steps):
                        pred = greedy_ids(logits.detach(), input_lengths)
                        refs = [alphabet.encode(lbl) for lbl in batch["labels"]]
                        acc = sum(p == r for p, r in zip(pred, refs)) / len(refs)
                        now = time.perf_counter()
                        ips = seen_since / max(now - t_last, 1e-9)
                        t_last, seen_since = now, 0
                        bar.set_postfix(loss=f"{last_loss:.3f}", acc=f"{acc:.2f}", img_s=f"{ips:.0f}")
                        log.write(step=step, epoch=epoch, lr=f"{scheduler.get_last_lr()[0]:.3g}", loss=f"{last_loss:.5f}", train_acc=f"{acc:.4f}", images_per_s=f"{ips:.1f}")
                    if val_loader is not None and (step % cfg.val_every == 0 or step == total_steps):
                        m = evaluate_loader(core_model, val_loader, alphabet, model_config, device, autocast)
                        log.write(step=step, epoch=epoch, val_loss=f"{m['val_loss']:.5f}", val_acc=f"{m['val_acc']:.4f}", val_cer=f"{m['val_cer']:.4f}")
                        bar.write(f"step {step}: val loss {m['val_loss']:.4f}, word accuracy {m['val_acc']:.4f}, CER {m['val_cer']:.4f} ({m['count']} samples)")
                        if best_metric is None or m["val_acc"] > best_metric:
                            best_metric = m["val_acc"]
                            save_checkpoint(best_path, checkpoint_state())
                        log.plot(out_dir / "curves.png")
                    if is_main and step % cfg.save_every == 0:
                        save_checkpoint(last_path, checkpoint_state())
                    if step >= total_steps or stop_signal:
                        break
                else:
                    finished_epoch = True
            except Exception:
                if not stop_signal:  # a signal can break DataLoader workers mid-epoch; the state is still consistent
                    raise
            if finished_epoch:
                if batches_read and not usable_batches:
                    raise TrainingStopped(
                        f"epoch {epoch}: no image of the {batches_read} batches read could be decoded "
                        f"({corrupt_total} corrupt images so far): check --data {' '.join(cfg.data)}"
                    )
                epoch += 1
                batches_in_epoch = 0
    finally:
        bar.close()
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)
    if world > 1:  # every rank read different samples
        counts = torch.tensor([corrupt_total], device=device)
        dist.all_reduce(counts)
        corrupt_total = int(counts[0])
    if is_main:
        save_checkpoint(last_path, checkpoint_state())
        if log is not None and not (out_dir / "curves.png").exists():
            log.plot(out_dir / "curves.png")
        if corrupt_total:
            print(f"skipped {corrupt_total} corrupt images at read time (header readable, pixels not)", flush=True)
        if skipped_nonfinite:
            print(f"skipped {skipped_nonfinite} steps with a NaN/inf loss", flush=True)
    if world > 1:
        dist.barrier()
    if stop_signal:
        raise Interrupted(stop_signal[0], step, str(last_path))
    return TrainResult(
        step=step,
        last_checkpoint=str(last_path),
        best_checkpoint=str(best_path) if best_path.exists() else None,
        best_metric=best_metric,
        final_loss=last_loss,
        skipped_nonfinite=skipped_nonfinite,
        model=core_model,
        skipped_corrupt=corrupt_total,
    )
