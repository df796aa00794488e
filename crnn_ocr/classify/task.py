"""The ``classify`` and ``tag`` tasks: what the core trainer asks of a classifier run (``crnn_ocr.tasks.Task``).

Registered when imported (``crnn_ocr.tasks.TASK_MODULES`` names this module). Both read the same
LMDBs as every other kind (``label-%09d``: a class name, or comma-separated tags) through a
``ClassList`` (``--alphabet`` is the class list file), train a ``ClassifierConfig`` model and:

- classify: softmax cross-entropy; batch accuracy; validation loss, accuracy and a confusion
  matrix (``confusion.csv`` beside best.pt, which follows the accuracy);
- tag: binary cross-entropy per class; validation mAP, mean AUC and d-prime (best.pt follows the
  mAP) and one threshold per class, the best F1 on the validation clips, kept in the checkpoint
  (``thresholds``; 0.5 without validation).

Options of ``TrainConfig``: ``mixup`` (Zhang et al. 2018, as PANNs uses it: a Beta(a, a) mix of
two clips' log-mels and targets; the mixed clip is as wide as the wider one), ``balanced`` (each
class drawn equally often: a sampler weight 1 / its count, a clip of several tags weighted by its
rarest), ``pooling``; SpecAugment and the waveform augmentation are the audio front-end's
(``--no-augment`` turns them off). A label that names no class, or an empty tag list, stops the
run before it starts (``ValueError``: one line, exit 2), naming the LMDB and the sample.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from crnn_ocr.classify.classes import ClassList
from crnn_ocr.classify.config import ClassifierConfig
from crnn_ocr.classify.metrics import accuracy, choose_thresholds, confusion_csv, confusion_matrix, tagging_metrics
from crnn_ocr.model import ModelConfig
from crnn_ocr.tasks import Validation, register_task, task_of_kind

BASE_COLUMNS = ["step", "epoch", "lr", "loss", "train_acc", "images_per_s", "val_loss"]
DEFAULT_HEIGHT = 32


def classifier_min_width(config: ClassifierConfig) -> int:
    """Narrowest input a model of ``config`` takes (``crnn_ocr.classify.models.min_width``)."""
    from crnn_ocr.classify.models import min_width

    return min_width(config.build())


class ClassifierTask:
    """One class per clip (``multilabel=False``: "classify") or several (True: "tag")."""

    labels_file = "classes.txt"

    def __init__(self, multilabel: bool) -> None:
        self.multilabel = multilabel
        self.name = "tag" if multilabel else "classify"
        self.log_columns = BASE_COLUMNS + (["val_map", "val_auc", "val_dprime"] if multilabel else ["val_acc"])
        self.best_name = "val mAP" if multilabel else "val accuracy"
        self.state_keys: tuple[str, ...] = ("thresholds",) if multilabel else ()

    # ------------------------------------------------------------------ what a run starts from
    def labels_from_dict(self, d: dict[str, Any]) -> ClassList:
        return ClassList.from_dict(d)

    def choose_labels(self, config, resumed: dict | None, init: dict | None) -> ClassList:
        """A resumed run's own; else ``--alphabet`` (the class list file); else a classifier init's."""
        if resumed is not None:
            return ClassList.from_dict(resumed["alphabet"])
        if config.alphabet is not None:
            return ClassList.from_file(config.alphabet, multilabel=self.multilabel)
        if init is not None and task_of_kind(init.get("kind")) in ("classify", "tag"):
            return ClassList(ClassList.from_dict(init["alphabet"]).classes, multilabel=self.multilabel)
        raise ValueError(f"--kind {self.name}: give --alphabet, the class list file (one class per line)")

    def choose_model_config(self, config, labels: ClassList, frontend, resumed: dict | None, init: dict | None) -> ClassifierConfig:
        """A resumed run's own; an init classifier's architecture (the head sized to the classes);
        an init CTC model's trunk (arch, LSTM size, channels, height); else the config's."""
        if resumed is not None:
            return ClassifierConfig.from_dict(resumed["model_config"])
        if init is not None and task_of_kind(init.get("kind")) in ("classify", "tag"):
            base = ClassifierConfig.from_dict(init["model_config"])
            return replace(base, num_classes=labels.num_classes, pooling=config.pooling or base.pooling)
        height = frontend.height if frontend is not None else config.height
        if init is not None:  # a CTC model: its trunk
            ctc = ModelConfig.from_dict(init["model_config"])
            return ClassifierConfig(num_classes=labels.num_classes, arch=ctc.arch, in_channels=ctc.in_channels, height=height or ctc.height,
                                    hidden_size=ctc.hidden_size, lstm_layers=ctc.lstm_layers, pooling=config.pooling)
        return ClassifierConfig(num_classes=labels.num_classes, arch=config.arch, in_channels=1 if frontend is not None else config.channels,
                                height=height or DEFAULT_HEIGHT, hidden_size=config.hidden_size, pooling=config.pooling)

    # ------------------------------------------------------------------ data
    def dataset_options(self, spec) -> dict[str, Any]:
        """Inputs narrower than the model's minimum are skipped and counted; a bad label stops the run."""
        return {"min_width": classifier_min_width(spec.model_config), "bad_labels": "raise"}

    def sample_weights(self, train_sets: list, config) -> list[float] | None:
        """With ``balanced``: per LMDB, 1 / the count of each clip's (rarest) class, scaled to the
        LMDB's share of the epoch (``data_ratios``, else its size)."""
        if not config.balanced:
            return None
        sizes = [len(ds) for ds in train_sets]
        shares = config.data_ratios or sizes
        weights: list[float] = []
        for ds, share in zip(train_sets, shares):
            ids = [ds.alphabet.encode(label) for label in ds.labels()]
            counts = np.bincount([i for tags in ids for i in tags], minlength=ds.alphabet.num_classes)
            w = np.array([max(1.0 / counts[i] for i in tags) for tags in ids])
            weights += (w / w.sum() * share / sum(shares)).tolist()
        return weights

    def targets(self, batch: dict[str, Any], num_classes: int, device: torch.device) -> torch.Tensor:
        """A batch's labels: class indices (N,) long, or multi-hot (N, K) float for tags."""
        ids = batch["targets"].to(device)
        if not self.multilabel:
            return ids  # one id per clip
        rows = torch.repeat_interleave(torch.arange(len(batch["target_lengths"]), device=device), batch["target_lengths"].to(device))
        out = torch.zeros(len(batch["target_lengths"]), num_classes, device=device)
        out[rows, ids] = 1.0
        return out

    # ------------------------------------------------------------------ training
    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy (class indices, or probabilities after mixup) or binary cross-entropy."""
        if self.multilabel:
            return F.binary_cross_entropy_with_logits(logits.float(), targets)
        return F.cross_entropy(logits.float(), targets)

    def training_loss(self, run, images: torch.Tensor, batch: dict[str, Any]) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Forward (after mixup, when on) and loss -> (loss, (logits (N, K), the targets accuracy is counted against))."""
        num_classes = run.spec.alphabet.num_classes
        targets = self.targets(batch, num_classes, run.device)
        widths = batch["input_widths"].to(run.device)
        scored, trained = targets, targets
        if run.cfg.mixup > 0:
            images, widths, trained, scored = mixup(images, widths, targets, num_classes, run.cfg.mixup, self.multilabel)
        with run.autocast():
            logits = run.model(images, widths if run.cfg.mask_padding else None)  # (N, C, H, W), (N,) -> (N, K)
        return self.loss(logits, trained), (logits, scored)

    def batch_accuracy(self, outputs: tuple[torch.Tensor, torch.Tensor], batch: dict[str, Any], spec) -> float:
        """Classify: top-1 accuracy; tag: share of clips whose tags over 0.5 are exactly their own."""
        logits, targets = outputs
        if self.multilabel:
            return float(((logits.detach().float() > 0) == (targets > 0.5)).all(dim=1).float().mean())
        return float((logits.detach().argmax(dim=1) == targets).float().mean())

    # ------------------------------------------------------------------ validation
    @torch.inference_mode()
    def collect(self, model: nn.Module, loader, spec, device: torch.device, autocast) -> tuple[np.ndarray, np.ndarray, float]:
        """Scores (N, K) (softmax or sigmoid), targets ((N,) indices or (N, K) 0/1) and the mean loss over a loader."""
        was_training = model.training
        model.eval()
        scores, truth, loss_sum = [], [], 0.0
        for batch in loader:
            if batch is None or len(batch["labels"]) == 0:
                continue
            targets = self.targets(batch, spec.alphabet.num_classes, device)
            with autocast():
                logits = model(batch["images"].to(device), batch["input_widths"].to(device)).float()  # (N, K)
            loss_sum += float(self.loss(logits, targets)) * len(batch["labels"])
            scores.append((torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=1)).cpu().numpy())
            truth.append(targets.cpu().numpy())
        model.train(was_training)
        count = sum(len(s) for s in scores)
        k = spec.alphabet.num_classes
        return (np.concatenate(scores) if scores else np.zeros((0, k)), np.concatenate(truth) if truth else np.zeros((0,) + ((k,) if self.multilabel else ())),
                loss_sum / max(count, 1))

    def validate(self, model: nn.Module, loader, spec, device: torch.device, autocast) -> Validation:
        scores, truth, loss = self.collect(model, loader, spec, device, autocast)
        if self.multilabel:
            m = tagging_metrics(scores, truth)
            return Validation(
                row={"val_loss": f"{loss:.5f}", "val_map": f"{m.mean_average_precision:.4f}", "val_auc": f"{m.mean_auc:.4f}",
                     "val_dprime": f"{m.d_prime:.4f}"},
                line=f"val loss {loss:.4f}, mAP {m.mean_average_precision:.4f}, AUC {m.mean_auc:.4f}, d-prime {m.d_prime:.3f} ({len(scores)} clips)",
                best=_finite(m.mean_average_precision), state={"thresholds": choose_thresholds(scores, truth)},
            )
        predicted = scores.argmax(axis=1)
        acc = accuracy(predicted, truth)
        matrix = confusion_matrix(predicted, truth, spec.alphabet.num_classes)
        return Validation(row={"val_loss": f"{loss:.5f}", "val_acc": f"{acc:.4f}"},
                          line=f"val loss {loss:.4f}, accuracy {acc:.4f} ({len(scores)} clips)", best=acc,
                          files={"confusion.csv": confusion_csv(matrix, spec.alphabet.classes)})


def _finite(value: float) -> float:
    return value if value == value else 0.0  # NaN (no positives at all) ranks lowest


def mixup(images: torch.Tensor, widths: torch.Tensor, targets: torch.Tensor, num_classes: int, alpha: float,
          multilabel: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mix each clip with another of the batch: ``lam * x + (1 - lam) * x[perm]``, lam ~ Beta(alpha, alpha)
    (one per batch, from torch's RNG: a resumed run draws the same). -> (images (N, C, H, W), widths
    (N,) (the wider of the two), mixed targets (N, K) for the loss, the dominant clip's targets for accuracy)."""
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(images.shape[0]).to(images.device)
    soft = targets if multilabel else F.one_hot(targets, num_classes).float()  # (N, K)
    mixed = lam * images + (1 - lam) * images[perm]
    return mixed, torch.maximum(widths, widths[perm]), lam * soft + (1 - lam) * soft[perm], targets if lam >= 0.5 else targets[perm]


CLASSIFY = register_task(ClassifierTask(multilabel=False))
TAG = register_task(ClassifierTask(multilabel=True))
