"""What a run starts from, decided before any data or model is built.

``resolve_start(config)`` reads the checkpoints the config names and returns a ``RunSpec``: fresh,
resumed or initialised from another model; the alphabet, the model's architecture and the input
settings (height, channels, width scale, the speech front-end) the run uses, and where a resumed
run picks up. It builds no loader and no model, so each rule is a unit test away
(tests/test_engine_start.py). The rules:

- ``--resume PATH`` continues PATH exactly; ``--resume`` alone (``"auto"``) continues
  ``OUT/last.pt`` when it exists and otherwise starts as if it was not given. A resumed run
  ignores ``--init-from`` (it is not even read) and takes the alphabet, architecture, width scale
  and speech front-end of its checkpoint, whatever the config says; ``max_width`` and ``kind``
  come from the config.
- ``--init-from`` keeps the checkpoint's architecture, input channels and LSTM size; the alphabet
  is ``--alphabet`` when given, else the checkpoint's; the height is ``--height`` when given, else
  the checkpoint's (layers that no longer fit start fresh: ``resize_output_layer``).
- A fresh run takes everything from the config: alphabet ``alphanumeric``, height 32 and the
  arch's LSTM size unless given.
- Width scale: the config's; if it gives none, a same-``kind`` init checkpoint's (a checkpoint
  without ``kind`` is text), else 1. Speech never stretches its frames (1).
- The labels and the model config are the run's task's to choose (``crnn_ocr.tasks``, by
  ``kind``): for text, score and speech (CTC) the rules above (``choose_alphabet``,
  ``choose_model_config``); classify and tag take a class list (``crnn_ocr.classify.task``).
- Audio (``kind`` speech, classify, tag): the log-mel front-end of the checkpoint when resuming, or when
  initialising with ``--n-mels`` unset or equal to the checkpoint's (its sample rate included);
  otherwise a new one from ``--sample-rate`` and ``--n-mels`` (default 64). The model's height is
  the number of mel bins and a fresh model reads one channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from crnn_ocr.alphabet import BLANK, Alphabet
from crnn_ocr.checkpoint import load_checkpoint
from crnn_ocr.engine.config import TrainConfig
from crnn_ocr.frontend import Frontend, ImageFrontend, frontend_from_dict, stored_frontend
from crnn_ocr.model import DEFAULT_LSTM_LAYERS, ModelConfig
from crnn_ocr.tasks import get_task, kind_info, task_for_kind, task_of_kind

FRESH, RESUME, INIT = "fresh", "resume", "init"
DEFAULT_ALPHABET = "alphanumeric"
DEFAULT_HEIGHT = 32
DEFAULT_N_MELS = 64


@dataclass(frozen=True)
class RunSpec:
    """What ``train`` executes: where it starts and the settings it inherits."""

    source: str  # FRESH, RESUME or INIT
    checkpoint: Path | None  # the file resumed or initialised from
    alphabet: Alphabet  # the labels: a CTC model's symbols, or a classifier's class list (crnn_ocr.tasks)
    model_config: ModelConfig  # or the config of the task's model family
    frontend: Frontend  # what prepares the inputs; saved in every checkpoint as ``frontend.to_dict()``
    step: int = 0  # a resumed run's position: optimizer steps, epoch, batches of that epoch already seen
    epoch: int = 0
    batches_in_epoch: int = 0
    best_metric: float | None = None  # the best validation word accuracy so far (best.pt's)
    state: dict[str, Any] | None = field(default=None, repr=False, compare=False)  # the loaded checkpoint

    @property
    def resuming(self) -> bool:
        return self.source == RESUME


def resume_path(config: TrainConfig) -> Path | None:
    """The checkpoint to resume: ``config.resume``, with ``"auto"`` meaning ``OUT/last.pt`` if it exists."""
    if not config.resume:
        return None
    if config.resume != "auto":
        return Path(config.resume)
    last = Path(config.out_dir) / "last.pt"
    return last if last.exists() else None


def resolve_start(config: TrainConfig) -> RunSpec:
    """Decide what the run starts from (see the module docstring); loads at most one checkpoint.

    ``CheckpointError`` for a ``--resume`` or ``--init-from`` file that is missing or unsafe;
    ``ValueError`` for an unknown alphabet or impossible speech settings."""
    path = resume_path(config)
    source = RESUME if path is not None else INIT if config.init_from else FRESH
    if source == INIT:
        path = Path(config.init_from)
    state = load_checkpoint(path) if path is not None else None
    return spec_from_state(config, source, path, state)


def spec_from_state(config: TrainConfig, source: str, path: Path | None, state: dict[str, Any] | None) -> RunSpec:
    """The ``RunSpec`` for an already loaded checkpoint ``state`` (None: a fresh run). The run's
    task (``crnn_ocr.tasks``, by ``config.kind``) chooses the labels and the model config."""
    resumed = state if source == RESUME else None
    init = state if source == INIT else None
    task = task_for_kind(config.kind)
    audio = choose_audio(config, resumed, init)
    alphabet = task.choose_labels(config, resumed, init)
    model_config = task.choose_model_config(config, alphabet, audio, resumed, init)
    if audio is not None:  # spectrogram frames are not stretched
        frontend = frontend_from_dict({**audio.to_dict(), "max_width": config.max_width})
    else:
        frontend = ImageFrontend(height=model_config.height, channels=model_config.in_channels, max_width=config.max_width,
                                 width_scale=choose_width_scale(config, resumed, init))
    position: dict[str, Any] = {}
    if resumed is not None:
        position = {"step": int(resumed["step"]), "epoch": int(resumed["epoch"]),
                    "batches_in_epoch": int(resumed["batches_in_epoch"]), "best_metric": resumed.get("best_metric")}
    return RunSpec(source=source, checkpoint=path, alphabet=alphabet, model_config=model_config, frontend=frontend,
                   state=state, **position)


def choose_audio(config: TrainConfig, resumed: dict | None, init: dict | None) -> Frontend | None:
    """Audio kinds (speech, classify, tag: ``crnn_ocr.tasks.KINDS``): the checkpoint's log-mel
    front-end (the speech wing's ``audio`` kind; resuming, or an init whose ``n_mels`` the config
    keeps, and ``feature_norm`` too), else a new one; None for images."""
    if kind_info(config.kind).frontend != "audio":
        return None
    start = resumed if resumed is not None else init
    stored = stored_frontend(start) if start is not None else None  # old and new checkpoint forms alike
    if stored is not None and stored.kind == "audio" and (resumed is not None or (
            config.n_mels in (None, stored.height) and config.feature_norm in (None, getattr(stored, "normalize", "bin")))):
        return stored
    return frontend_from_dict({"kind": "audio", "sample_rate": config.sample_rate, "n_mels": config.n_mels or DEFAULT_N_MELS,
                               "normalize": config.feature_norm or "bin"})


def choose_alphabet(config: TrainConfig, resumed: dict | None, init: dict | None) -> Alphabet:
    """A resumed run's own; else ``--alphabet``; else the init checkpoint's (fine-tuning keeps the
    model's symbols unless told otherwise); else ``alphanumeric``."""
    if resumed is not None:
        return Alphabet.from_dict(resumed["alphabet"])
    if config.alphabet is not None:
        return Alphabet.resolve(config.alphabet)
    return Alphabet.from_dict(init["alphabet"]) if init is not None else Alphabet.preset(DEFAULT_ALPHABET)


def choose_model_config(config: TrainConfig, alphabet: Alphabet, audio: Frontend | None,
                        resumed: dict | None, init: dict | None) -> ModelConfig:
    """A resumed run's own; else the init's arch, channels and LSTM size, or the config's."""
    if resumed is not None:
        return ModelConfig.from_dict(resumed["model_config"])
    base = ModelConfig.from_dict(init["model_config"]) if init is not None else None
    hidden = {"hidden_size": base.hidden_size} if base else ({"hidden_size": config.hidden_size} if config.hidden_size else {})
    arch = base.arch if base else config.arch
    return ModelConfig(
        num_classes=alphabet.num_classes,
        arch=arch,
        lstm_layers=base.lstm_layers if base else DEFAULT_LSTM_LAYERS.get(arch, 2),
        in_channels=base.in_channels if base else (1 if audio else config.channels),
        height=audio.height if audio else config.height or (base.height if base else DEFAULT_HEIGHT),
        **hidden,
    )


def choose_width_scale(config: TrainConfig, resumed: dict | None, init: dict | None) -> float:
    """A resumed run keeps its own; else the config's; else a same-kind init's (a score model from
    a text one starts at 1); else 1."""
    inherit = resumed if resumed is not None else (
        init if config.width_scale is None and init is not None and init.get("kind", "text") == config.kind else None)
    if inherit is None:
        return float(config.width_scale or 1.0)
    stored = stored_frontend(inherit)
    return float(getattr(stored, "width_scale", 1.0))


# --------------------------------------------------------------------------- weights
def start_weights(model: nn.Module, spec: RunSpec, init_name: str | None = None) -> str | None:
    """Load the weights ``spec`` starts from into the freshly built ``model``; for an init, the
    line that says what was kept (``init_name`` names the checkpoint in it)."""
    if spec.source == RESUME:  # with --ema, "model" is the average; the optimizer stepped "train_model"
        model.load_state_dict(spec.state.get("train_model", spec.state["model"]))
    if spec.source != INIT:
        return None
    old_alphabet = get_task(task_of_kind(spec.state.get("kind"))).labels_from_dict(spec.state["alphabet"])
    fresh: list[str] = []
    model.load_state_dict(resize_output_layer(spec.state["model"], old_alphabet, spec.alphabet, model, fresh=fresh))
    kept = len(model.state_dict()) - len(fresh)
    resized = f"; output layer {old_alphabet.num_classes} -> {spec.alphabet.num_classes} classes" \
        if old_alphabet != spec.alphabet else ""
    new = f"; fresh: {', '.join(fresh)}" if fresh else ""
    return f"init from {init_name or spec.checkpoint}: {kept} of {len(model.state_dict())} tensors kept{resized}{new}"


def resize_output_layer(
    state_dict: dict[str, torch.Tensor], old: Alphabet, new: Alphabet, model: nn.Module, *, fresh: list[str] | None = None
) -> dict[str, torch.Tensor]:
    """Adapt a state dict trained on ``old`` to ``new``: rows of the classifier for the blank and
    for symbols both alphabets share are kept, the rest come from ``model``'s fresh init. When
    ``old`` ignores case, both cases of a letter start from its row (fine-tuning then learns to
    tell them apart).

    Any other layer whose shape differs (or that only one side has) is a ``ValueError``, unless
    ``fresh`` is a list: then such layers keep ``model``'s fresh init and their names are appended
    (as a classifier's rows do: only two ``Alphabet``s share rows by symbol)
    to it (e.g. a 64 px model started from a 32 px one: every convolution and LSTM fits, the
    projection of the taller feature map is new)."""
    model_state = model.state_dict()
    out = {k: v for k, v in state_dict.items() if k in model_state or fresh is None}
    for key, value in model_state.items():
        src = state_dict.get(key)
        if src is not None and src.shape == value.shape:
            continue
        if src is not None and src.dim() >= 1 and src.shape[0] == old.num_classes and value.shape[0] == new.num_classes \
                and src.shape[1:] == value.shape[1:] and isinstance(old, Alphabet) and isinstance(new, Alphabet):
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
