"""Import deep-text-recognition-benchmark ``None-VGG-BiLSTM-CTC`` checkpoints (EasyOCR's ``*_g2``): the deploy wing.

    convert_dtrb_checkpoint(ConvertConfig(pth="english_g2.pth", out="english_g2.pt"))

The third-party ``.pth`` is a bare state dict (``torch.save(model.state_dict())``, often with
DataParallel's ``module.`` prefixes, sometimes wrapped as ``{"state_dict": ...}``). It is read with
``torch.load(weights_only=True)`` only: a file holding anything but tensors and plain containers is
refused with one line, never unpickled. Its keys are mapped explicitly onto arch ``dtrb_vgg``
(``crnn_ocr.model``), whose modules mirror the reference layer for layer:

    module.FeatureExtraction.ConvNet.{i}.*  -> cnn.{i}.*         (VGG_FeatureExtractor)
    module.SequenceModeling.{j}.rnn|linear  -> rnn.{j}.rnn|linear  (BidirectionalLSTM j)
    module.Prediction.*                     -> rnn.{L}.*          (Linear(hidden, num_class), L = BiLSTMs)

Sizes (input channels, ``feature_channels``, hidden size, BiLSTM count, classes) are read from the
tensor shapes; every shape is checked against the model built from them before anything is written.
The alphabet is the reference's ``character`` string: DTRB's CTCLabelConverter puts
``[CTCblank]`` at index 0 and ``character[i]`` at ``i + 1``, which is crnn_ocr's ``BLANK = 0``
layout, so the output layer is used as is.

Preprocessing: EasyOCR feeds gray crops resized to height 64 keeping the aspect ratio (PIL bicubic,
width ``ceil(64 * w / h)``), scaled to ``(x / 255 - 0.5) / 0.5`` = [-1, 1] and right-padded by
repeating the last column: the same value range and padding as ``crnn_ocr.preprocessing``. The
differences are the resampling (OpenCV INTER_AREA when shrinking / INTER_CUBIC when enlarging;
width rounded rather than ceiled) and EasyOCR's second pass with contrast stretching for
low-confidence crops, which crnn_ocr does not do.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from crnn_ocr.alphabet import Alphabet
from crnn_ocr.checkpoint import CheckpointError, safe_torch_load, save_checkpoint
from crnn_ocr.frontend import ImageFrontend
from crnn_ocr.model import ModelConfig, build_model

# EasyOCR's recognition_models["gen2"][name]["characters"] (easyocr/config.py) and its imgH.
DTRB_PRESETS: dict[str, dict] = {
    "english_g2": {
        "characters": "0123456789!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ €ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        "height": 64,
    },
}

_CONV = re.compile(r"FeatureExtraction\.ConvNet\.(\d+)\.(weight|bias|running_mean|running_var|num_batches_tracked)")
_LSTM = re.compile(r"SequenceModeling\.(\d+)\.(rnn\.(?:weight|bias)_(?:ih|hh)_l0(?:_reverse)?|linear\.(?:weight|bias))")
_HEAD = re.compile(r"Prediction\.(weight|bias)")
# Stages of other DTRB models, named in the error when they show up.
_OTHER_STAGES = {"Transformation": "a TPS transformation", "Prediction.attention_cell": "an attention decoder",
                 "Prediction.generator": "an attention decoder"}


@dataclass
class ConvertConfig:
    """What ``convert_dtrb_checkpoint`` reads and writes."""

    pth: str | os.PathLike  # the DTRB / EasyOCR state dict
    out: str | os.PathLike  # the crnn_ocr checkpoint to write
    characters: str | None = None  # the reference's `character` string in id order; None: the preset's
    preset: str = "english_g2"  # a DTRB_PRESETS name: characters (unless given) and height
    height: int | None = None  # input height the model was trained at; None: the preset's
    ignore_case: bool = False  # for models trained case-insensitively (lower-case characters only)


def load_dtrb_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """Read a DTRB state dict safely: ``weights_only=True``, unwrap ``{"state_dict": ...}``, strip ``module.``."""
    path = Path(path)
    obj = safe_torch_load(path)
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: not a state dict (expected a dict of tensors, got {type(obj).__name__})")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def map_dtrb_keys(state: dict[str, Tensor], *, source: str = "checkpoint") -> dict[str, Tensor]:
    """DTRB None-VGG-BiLSTM-CTC keys (no ``module.``) -> ``dtrb_vgg`` keys; ``CheckpointError`` on any other key."""
    lstm_layers = 1 + max((int(m.group(1)) for k in state if (m := _LSTM.fullmatch(k))), default=-1)
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if m := _CONV.fullmatch(key):
            out[f"cnn.{m.group(1)}.{m.group(2)}"] = value
        elif m := _LSTM.fullmatch(key):
            out[f"rnn.{m.group(1)}.{m.group(2)}"] = value
        elif m := _HEAD.fullmatch(key):
            out[f"rnn.{lstm_layers}.{m.group(1)}"] = value
        else:
            stage = next((what for prefix, what in _OTHER_STAGES.items() if key.startswith(prefix)), None)
            why = f"it has {stage}" if stage else f"unexpected key {key!r}"
            raise CheckpointError(f"{source}: not a None-VGG-BiLSTM-CTC checkpoint ({why})")
    return out


def _shape_of(state: dict[str, Tensor], key: str, ndim: int, source: str) -> tuple[int, ...]:
    if key not in state:
        raise CheckpointError(f"{source}: not a None-VGG-BiLSTM-CTC checkpoint (missing {key!r})")
    shape = tuple(state[key].shape)
    if len(shape) != ndim:
        raise CheckpointError(f"{source}: {key} has shape {shape}, expected {ndim} dimensions")
    return shape


def infer_dtrb_config(state: dict[str, Tensor], height: int, *, source: str = "checkpoint") -> ModelConfig:
    """The ``dtrb_vgg`` ModelConfig a (prefix-free) DTRB state dict was built with, from its shapes."""
    in_channels = _shape_of(state, "FeatureExtraction.ConvNet.0.weight", 4, source)[1]
    feature_channels = _shape_of(state, "FeatureExtraction.ConvNet.18.weight", 4, source)[0]
    hidden = _shape_of(state, "SequenceModeling.0.rnn.weight_hh_l0", 2, source)[1]
    num_classes = _shape_of(state, "Prediction.weight", 2, source)[0]
    lstm_layers = 1 + max(int(m.group(1)) for k in state if (m := _LSTM.fullmatch(k)))
    return ModelConfig(num_classes=num_classes, arch="dtrb_vgg", in_channels=in_channels, height=height,
                       hidden_size=hidden, lstm_layers=lstm_layers, feature_channels=feature_channels)


def _check_against_model(mapped: dict[str, Tensor], expected: dict[str, Tensor], source: str) -> None:
    """Same keys, same shapes, or a one-line error naming the first difference (in DTRB's terms)."""
    missing = [k for k in expected if k not in mapped]
    if missing:
        raise CheckpointError(f"{source}: incomplete None-VGG-BiLSTM-CTC checkpoint: {len(missing)} tensor(s) "
                              f"missing, first {missing[0]!r} (crnn_ocr name)")
    extra = [k for k in mapped if k not in expected]
    if extra:
        raise CheckpointError(f"{source}: tensor {extra[0]!r} (crnn_ocr name) does not exist in this architecture "
                              "(layer indices differ from None-VGG-BiLSTM-CTC)")
    for key, value in mapped.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise CheckpointError(f"{source}: {key} (crnn_ocr name) has shape {tuple(value.shape)}, expected "
                                  f"{tuple(expected[key].shape)} for the sizes read from the other layers")


def resolve_characters(characters: str | None, preset: str) -> str:
    """The character string: ``characters`` if given, else the preset's."""
    if characters is not None:
        if not characters:
            raise ValueError("the character string is empty")
        return characters
    if preset not in DTRB_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(DTRB_PRESETS)}")
    return DTRB_PRESETS[preset]["characters"]


def read_characters_file(path: str | os.PathLike) -> str:
    """A character string from a file: one line holding the string (a final newline is ignored), or one
    symbol per line (crnn_ocr's alphabet format, used when the file has several non-empty lines)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read characters file: {e}") from None
    text = text.removesuffix("\n").removesuffix("\r")
    if sum(1 for line in text.split("\n") if line.rstrip("\r")) > 1:
        return "".join(Alphabet.from_file(path).symbols)
    if not text:
        raise ValueError(f"{path}: characters file is empty")
    return text


def convert_state_dict(state: dict[str, Tensor], alphabet: Alphabet, height: int, *, source: str = "checkpoint"
                       ) -> tuple[ModelConfig, dict[str, Tensor]]:
    """A prefix-free DTRB state dict -> (``dtrb_vgg`` config, crnn_ocr state dict), shapes checked."""
    config = infer_dtrb_config(state, height, source=source)
    if config.num_classes != alphabet.num_classes:
        raise CheckpointError(f"{source}: the model has {config.num_classes} classes (blank + "
                              f"{config.num_classes - 1} characters) but the alphabet has {len(alphabet.symbols)} characters")
    mapped = map_dtrb_keys(state, source=source)
    try:
        model = build_model(config)
    except ValueError as e:
        raise CheckpointError(f"{source}: {e}") from None
    _check_against_model(mapped, model.state_dict(), source)
    model.load_state_dict(mapped)  # strict: cannot fail after the checks, but proves it
    return config, {k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in mapped.items()}


def convert_dtrb_checkpoint(cfg: ConvertConfig) -> dict:
    """Convert ``cfg.pth`` into a crnn_ocr checkpoint at ``cfg.out`` (kind "text"); returns its model config dict."""
    characters = resolve_characters(cfg.characters, cfg.preset)
    height = cfg.height or DTRB_PRESETS.get(cfg.preset, {}).get("height", 64)
    alphabet = Alphabet(list(characters), ignore_case=cfg.ignore_case, separator="")
    state = load_dtrb_state_dict(cfg.pth)
    config, weights = convert_state_dict(state, alphabet, height, source=os.fspath(cfg.pth))
    save_checkpoint(cfg.out, {
        "kind": "text",
        "model_config": config.to_dict(),
        "alphabet": alphabet.to_dict(),
        "frontend": ImageFrontend(height=height, channels=config.in_channels).to_dict(),
        "model": weights,
        "source": {"format": "deep-text-recognition-benchmark None-VGG-BiLSTM-CTC", "file": Path(cfg.pth).name,
                   "preset": None if cfg.characters is not None else cfg.preset},
    })
    return config.to_dict()
