"""Optimizer and learning-rate schedule of a run."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


def make_optimizer(name: str, params: Iterable[torch.nn.Parameter], lr: float | None,
                   weight_decay: float) -> tuple[torch.optim.Optimizer, float]:
    """``adamw`` (default lr 1e-3) or the paper's ``adadelta`` (default lr 1.0) -> (optimizer, its lr)."""
    if name == "adamw":
        lr = 1e-3 if lr is None else lr
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay), lr
    if name == "adadelta":
        lr = 1.0 if lr is None else lr
        return torch.optim.Adadelta(params, lr=lr, rho=0.9), lr
    raise ValueError(f"unknown optimizer {name!r}: choose adamw or adadelta")


def make_scheduler(name: str, optimizer: torch.optim.Optimizer, total_steps: int, lr: float,
                   warmup: int | None) -> torch.optim.lr_scheduler.LRScheduler:
    """``constant``; ``onecycle`` (15% warm-up to ``lr``, then down); ``cosine`` after a linear
    warm-up of ``warmup`` steps (default 5% of the run)."""
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
