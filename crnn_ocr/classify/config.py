"""``ClassifierConfig``: the architecture of a classifier or tagger, saved in its checkpoints.

Three families, all mapping log-mel "images" ``(N, C_in, H, W)`` (and each input's true width) to
logits ``(N, num_classes)`` (``crnn_ocr.classify.models``):

================  =====================================================================================
arch              model
================  =====================================================================================
crnn,             a CRNN trunk of the core (``crnn_ocr.model``: conv trunk + BiLSTMs, its layers named
crnn_compact,     as in a CTC checkpoint, so ``--init-from`` a text or speech model keeps them) whose
resnet,           frames are pooled over time (``pooling``: mean, max, meanmax, attention) into a linear
mobilenetv3,      head; ``hidden_size`` is the LSTM size (the trunk's default) and the frame features'
dtrb_vgg          width
convrnn,          ``layers`` Convolutional RNN layers (Keren & Schuller 2016, ``ConvRNN1d``): windows of
convrnn_lstm      ``kernel_size`` frames every ``stride`` frames, each read by a bidirectional GRU (LSTM),
                  ``hidden_size`` units per direction (default 64), on the mel bins of each frame
conv1d            the same with a plain ``Conv1d`` + ReLU of the same kernel, stride and output width
                  (2 x ``hidden_size`` channels): the paper's comparison
cnn6, cnn10,      PANNs-style CNNs (Kong et al. 2020): blocks of one 5x5 (cnn6) or two 3x3 (cnn10,
cnn14             cnn14) conv + BN + ReLU and 2x2 average pooling, channels ``hidden_size`` (default 16;
                  PANNs: 64) doubling per block (4 blocks; cnn14 6, the last unpooled), mean over
                  frequency, then max + mean over time (``meanmax``), a ReLU embedding layer, the head
================  =====================================================================================

This module needs no torch (``tools/train.py`` lists the archs from it); ``build()`` builds the model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

TRUNK_ARCHS = ("crnn", "crnn_compact", "resnet", "resnet18", "resnet34", "mobilenetv3", "mobilenetv3_small",
               "mobilenetv3_large", "dtrb_vgg")
CONVRNN_ARCHS = ("convrnn", "convrnn_lstm", "conv1d")
PANNS_ARCHS = ("cnn6", "cnn10", "cnn14")
CLASSIFIER_ARCHS = CONVRNN_ARCHS + PANNS_ARCHS  # besides the trunks, which CTC models share
POOLINGS = ("mean", "max", "meanmax", "attention")


def default_pooling(arch: str) -> str:
    """Attention over a CRNN trunk's frames; PANNs' max + mean elsewhere."""
    return "attention" if arch in TRUNK_ARCHS else "meanmax"


@dataclass
class ClassifierConfig:
    """Architecture of a classifier (see the module docstring); ``build()`` gives the model."""

    num_classes: int
    arch: str = "crnn_compact"
    in_channels: int = 1
    height: int = 64  # mel bins
    hidden_size: int | None = None  # None: the arch's default (see the table)
    pooling: str | None = None  # None: default_pooling(arch)
    lstm_layers: int = 2  # CRNN trunks
    kernel_size: int = 5  # convrnn / conv1d: frames per window
    stride: int = 2  # convrnn / conv1d: frames between windows
    layers: int = 2  # convrnn / conv1d: stacked layers
    dropout: float = 0.2  # before the head (and after each PANNs block)

    def __post_init__(self) -> None:
        if self.arch not in TRUNK_ARCHS + CLASSIFIER_ARCHS:
            raise ValueError(f"unknown classifier arch {self.arch!r}; choose one of {', '.join(TRUNK_ARCHS + CLASSIFIER_ARCHS)}")
        if self.pooling is None:
            self.pooling = default_pooling(self.arch)
        if self.pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {self.pooling!r}; choose one of {', '.join(POOLINGS)}")
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {self.num_classes}")
        if min(self.kernel_size, self.stride, self.layers, self.lstm_layers) < 1:
            raise ValueError("kernel_size, stride, layers and lstm_layers must be positive")

    @property
    def family(self) -> str:
        """"trunk", "convrnn" or "panns"."""
        return "trunk" if self.arch in TRUNK_ARCHS else "convrnn" if self.arch in CONVRNN_ARCHS else "panns"

    def build(self) -> Any:
        """The model for this config, randomly initialized (``crnn_ocr.model.build_model`` calls this)."""
        from crnn_ocr.classify.models import build_classifier

        return build_classifier(self)

    def to_dict(self) -> dict[str, Any]:
        return {"family": "classifier", **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClassifierConfig:
        """Inverse of ``to_dict``; unknown keys are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
