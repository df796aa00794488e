"""A run's record: ``log.csv`` (one row per logged step or validation) and its ``curves.png``."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any

COLUMNS = ["step", "epoch", "lr", "loss", "train_acc", "images_per_s", "val_loss", "val_acc", "val_cer"]
"""A CTC run's columns; another task names its own validation columns (``Task.log_columns``)."""
CTC_LABELS = {"val_acc": "word accuracy", "val_cer": "CER"}  # curves.png legend of CTC's validation columns
LABELS = {"val_acc": "accuracy", "val_map": "mAP", "val_auc": "AUC", "val_dprime": "d-prime"}  # other tasks' (else the name)


class CsvLog:
    """Appends rows to ``path``. A new run starts it empty (header only); a run resumed at step
    ``resume_step`` keeps the rows up to that step, dropping what a killed run logged after its
    last checkpoint, so the file reads as one uninterrupted run."""

    def __init__(self, path: Path, resume_step: int | None, columns: list[str] = COLUMNS) -> None:
        self.path = path
        self.columns = list(columns)
        rows = []
        if resume_step is not None and path.exists():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        tmp = path.with_suffix(".tmp.csv")  # a kill while rewriting must not lose the history
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, self.columns)
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, path)

    def write(self, **row: Any) -> None:
        """One row; columns not given stay empty."""
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.columns).writerow({k: row.get(k, "") for k in self.columns})

    def plot(self, png: Path) -> None:
        plot_curves(self.path, png)


def plot_curves(log_csv: Path, png: Path) -> None:
    """Draw a ``log.csv``: train and validation loss (log scale) beside the validation scores
    (word accuracy and CER for CTC; every ``val_*`` column but the loss); written atomically to ``png``."""
    import matplotlib  # only when drawing: a slow import that training without a plot never needs

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(log_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    train = [(int(r["step"]), float(r["loss"])) for r in rows if r["loss"]]
    scores = [c for c in (rows[0] if rows else {}) if c.startswith("val_") and c != "val_loss"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    if train:
        ax1.plot(*zip(*train), label="train loss")
    vl = [(int(r["step"]), float(r["val_loss"])) for r in rows if r["val_loss"]]
    if vl:
        ax1.plot(*zip(*vl), "o-", label="val loss")
    ctc = "val_cer" in scores
    ax1.set_xlabel("step"), ax1.set_yscale("log"), ax1.set_title("CTC loss" if ctc else "loss")
    top = 1.0
    for column, marker in zip(scores, "osd^v"):
        points = [(int(r["step"]), float(r[column])) for r in rows if r[column] and math.isfinite(float(r[column]))]
        if points:
            ax2.plot(*zip(*points), f"{marker}-", label=(CTC_LABELS if ctc else LABELS).get(column, column[4:]))
            top = max(top, *(v for _, v in points))
    ax2.set_xlabel("step"), ax2.set_ylim(0, top), ax2.set_title("validation")
    for ax in (ax1, ax2):
        if ax.lines:
            ax.legend()
    fig.tight_layout()
    tmp = png.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, png)
