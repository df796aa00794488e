"""``TrainConfig``: everything a training run needs, as ``tools/train.py`` fills it from the command line.

Checkpoints store it (``train_config``) as a plain dict; ``from_dict`` ignores keys it does not know.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class TrainConfig:
    """Everything a training run needs; ``tools/train.py`` fills it from the command line."""

    data: list[str]  # LMDB folders, or synth:CONFIG.json (words rendered in the loader: crnn_ocr.synth.online)
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
    feature_norm: str | None = None  # audio: the front-end's per-utterance normalization, "bin" or "clip"; default "bin" or the init's
    batch_size: int = 64
    optimizer: str = "adamw"  # "adamw" or "adadelta" (the paper's)
    lr: float | None = None  # default: 1e-3 for AdamW, 1.0 for Adadelta
    weight_decay: float = 1e-4
    schedule: str = "onecycle"  # "onecycle", "cosine", "constant"
    warmup_steps: int | None = None  # default: 5% of the steps (cosine); onecycle has its own warm-up
    grad_clip: float = 5.0
    ema: float = 0.0  # decay of an exponential moving average of the weights, validated and saved as "model"; 0: off
    max_steps: int | None = None
    epochs: int | None = None
    val_every: int = 500
    save_every: int = 500
    keep_every: int | None = None  # also keep the checkpoint of every this many steps as out_dir/step-%07d.pt; None: no copies
    log_every: int = 20
    out_dir: str = "runs/crnn"
    resume: str | None = None  # a checkpoint path, or "auto" for out_dir/last.pt if it exists
    init_from: str | None = None  # weights only; the output layer is resized to a new alphabet
    seed: int = 0
    num_workers: int = 2
    augment: bool | str = True  # False, True (the default strength) or a strength name: light, strong
    crop_jitter: float = 0.0  # images: share prepared as a random crop view (crnn_ocr.augment.random_view); 0: off
    amp: bool = True  # float16 autocast + GradScaler on CUDA
    bf16: bool = False  # bfloat16 autocast on CPU
    channels_last: bool | None = None  # NHWC memory format for the model and input batches; None: on CUDA only
    device: str | None = None
    progress: bool = True
    max_bad_steps: int = 20  # consecutive non-finite losses before giving up
    shortest_first: int = 0  # epochs run shortest input first (DeepSpeech2's SortaGrad curriculum); 0: shuffled from the start
    mask_padding: bool = True  # the model sees each image's true width (CRNN.forward); False: the old unmasked forward, for ablations
    # classify / tag (crnn_ocr.classify.task)
    pooling: str | None = None  # over time: mean, max, meanmax, attention (default: the arch's)
    mixup: float = 0.0  # Beta(alpha, alpha) mixup of log-mel inputs and targets; 0: off
    balanced: bool = False  # draw every class equally often

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def check_config(cfg: TrainConfig) -> None:
    """``ValueError`` for a config no run can start from: no training data, or no length given."""
    if not cfg.data:
        raise ValueError("--data: give at least one LMDB")
    if cfg.max_steps is None and cfg.epochs is None:
        raise ValueError("give --max-steps or --epochs")
    if not 0.0 <= cfg.ema < 1.0:
        raise ValueError(f"--ema must be a decay in [0, 1) (0: off), got {cfg.ema}")
    if not 0.0 <= cfg.crop_jitter <= 1.0:
        raise ValueError(f"--crop-jitter must be a share in [0, 1] (0: off), got {cfg.crop_jitter}")
    if cfg.keep_every is not None and cfg.keep_every <= 0:
        raise ValueError(f"--keep-every must be positive, got {cfg.keep_every}")


def augment_spec(cfg: TrainConfig) -> bool | str | dict[str, Any]:
    """The training sources' ``augment`` argument: ``cfg.augment``, or with ``crop_jitter`` a
    mapping for the image front-end (``ImageFrontend.augmentation``)."""
    if not cfg.crop_jitter:
        return cfg.augment
    strength = "none" if cfg.augment is False else "default" if cfg.augment is True else cfg.augment
    return {"strength": strength, "crop_jitter": cfg.crop_jitter}


def total_steps(cfg: TrainConfig, steps_per_epoch: int) -> int:
    """Optimizer steps the run lasts: ``max_steps``, ``epochs`` passes, or whichever ends first."""
    if cfg.max_steps is None:
        return cfg.epochs * steps_per_epoch
    if cfg.epochs is None:
        return cfg.max_steps
    return min(cfg.max_steps, cfg.epochs * steps_per_epoch)
