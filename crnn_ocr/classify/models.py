"""Classifier models: log-mel "images" (N, C_in, H, W) and true widths (N,) -> logits (N, num_classes).

The families of ``crnn_ocr.classify.config`` (``build_classifier``): a core CRNN trunk with temporal
pooling (``CRNNPooled``), stacked Convolutional RNN layers or their plain-convolution twin
(``ConvRNNClassifier``) and a PANNs-style CNN (``PannsCNN``). Every one masks the batch padding, so
an input's logits do not depend on the rest of its batch: the trunk as ``crnn_ocr.model`` does
(``masked_trunk``, packed BiLSTMs), windows inside each input (``ConvRNN1d``), and pooling over each
input's own frames (``TemporalPooling``). The forward is pure: logits only, no softmax.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from crnn_ocr.classify.convrnn import ConvRNN1d, FrameConv1d
from crnn_ocr.model import CRNN, ModelConfig, masked_trunk, min_input_width, output_lengths

if TYPE_CHECKING:  # config.build() imports this module
    from crnn_ocr.classify.config import ClassifierConfig

DEFAULT_CONVRNN_WIDTH = 64  # units per direction
DEFAULT_PANNS_WIDTH = 16  # the first block's channels (PANNs: 64)
_MAX_PROBE_WIDTH = 4096


class TemporalPooling(nn.Module):
    """(N, T, D) frames and real frames per item (N,) -> (N, D), over each item's own frames.

    ``mean``; ``max``; ``meanmax``: their sum (PANNs); ``attention``: softmax weights from a linear
    score per frame. ``lengths`` None: every frame is real.
    """

    def __init__(self, kind: str, features: int) -> None:
        super().__init__()
        self.kind = kind
        self.score = nn.Linear(features, 1) if kind == "attention" else None

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        n, t, _ = x.shape
        if lengths is None:
            lengths = torch.full((n,), t, dtype=torch.long, device=x.device)
        lengths = lengths.to(x.device).clamp(min=1, max=t)
        real = torch.arange(t, device=x.device)[None, :] < lengths[:, None]  # (N, T)
        if self.score is not None:
            scores = self.score(x).squeeze(-1).masked_fill(~real, float("-inf"))  # (N, T)
            return (torch.softmax(scores, dim=1).unsqueeze(-1) * x).sum(dim=1)  # (N, D)
        mean = (x * real.unsqueeze(-1)).sum(dim=1) / lengths.unsqueeze(-1).to(x.dtype)  # (N, D)
        if self.kind == "mean":
            return mean
        top = x.masked_fill(~real.unsqueeze(-1), float("-inf")).amax(dim=1)  # (N, D)
        return top if self.kind == "max" else top + mean


class CRNNPooled(CRNN):
    """A core CRNN (trunk, projection, BiLSTMs; the last one's linear layer gives ``D`` features
    per frame) whose frames are pooled over time into a linear head. Its layers carry a CTC
    model's names, so a text or speech checkpoint initialises them."""

    def __init__(self, config: ClassifierConfig) -> None:
        features = config.hidden_size or 256
        super().__init__(ModelConfig(num_classes=features, arch=config.arch, in_channels=config.in_channels, height=config.height,
                                     hidden_size=features, lstm_layers=config.lstm_layers))
        self.classifier_config = config
        self.pool = TemporalPooling(config.pooling, features)
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(features, config.num_classes))

    def frames(self, widths: Tensor) -> Tensor:
        return output_lengths(widths, self.config)

    def forward(self, images: Tensor, widths: Tensor | None = None) -> Tensor:
        """(N, C_in, H, W), widths (N,) -> logits (N, num_classes)."""
        x = super().forward(images, widths)  # (N, T, D)
        lengths = None if widths is None else self.frames(widths.to(images.device))
        return self.head(self.pool(x, lengths))  # (N, D) -> (N, K)


class ConvRNNClassifier(nn.Module):
    """Stacked ``ConvRNN1d`` (bidirectional GRU or LSTM) or ``FrameConv1d`` layers over the frames'
    mel bins, pooled over time into a linear head."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.classifier_config = config
        width = config.hidden_size or DEFAULT_CONVRNN_WIDTH
        features = config.in_channels * config.height
        layers: list[nn.Module] = []
        for _ in range(config.layers):
            if config.arch == "conv1d":
                layer: nn.Module = FrameConv1d(features, 2 * width, config.kernel_size, config.stride)
            else:
                layer = ConvRNN1d(features, width, config.kernel_size, config.stride,
                                  rnn="lstm" if config.arch == "convrnn_lstm" else "gru", bidirectional=True)
            layers.append(layer)
            features = layer.out_features
        self.layers = nn.ModuleList(layers)
        self.pool = TemporalPooling(config.pooling, features)
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(features, config.num_classes))

    def frames(self, widths: Tensor) -> Tensor:
        for layer in self.layers:
            widths = layer.output_length(widths)
        return widths

    def forward(self, images: Tensor, widths: Tensor | None = None) -> Tensor:
        """(N, C_in, H, W), widths (N,) -> logits (N, num_classes)."""
        n, c, h, w = images.shape
        x = images.reshape(n, c * h, w).transpose(1, 2)  # (N, W, C*H): a sequence of frames
        for layer in self.layers:
            x = layer(x)  # (N, T, D) -> (N, T', D')
        lengths = None if widths is None else self.frames(widths.to(images.device).long())
        return self.head(self.pool(x, lengths))


def _panns_blocks(config: ClassifierConfig) -> list[nn.Module]:
    """The conv blocks: (N, C_in, H, W) -> (N, C, H / 2^p, W / 2^p) for p pooled blocks."""
    base = config.hidden_size or DEFAULT_PANNS_WIDTH
    count, pooled = (6, 5) if config.arch == "cnn14" else (4, 4)
    kernels = (5,) if config.arch == "cnn6" else (3, 3)
    layers: list[nn.Module] = []
    c_in = config.in_channels
    for block in range(count):
        c_out = base * 2**block
        for k in kernels:
            layers += [nn.Conv2d(c_in, c_out, k, 1, k // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            c_in = c_out
        if block < pooled:
            layers.append(nn.AvgPool2d(2))
        layers.append(nn.Dropout(config.dropout))
    return layers


class PannsCNN(nn.Module):
    """PANNs-style CNN (Kong et al. 2020) on log-mels: conv blocks (masked as ``crnn_ocr.model.masked_trunk``
    does), mean over frequency, max + mean over each input's frames, a ReLU embedding, the head."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.classifier_config = config
        self.cnn = nn.Sequential(*_panns_blocks(config))
        self.pooled_blocks = 5 if config.arch == "cnn14" else 4
        channels = (config.hidden_size or DEFAULT_PANNS_WIDTH) * 2 ** (6 - 1 if config.arch == "cnn14" else 4 - 1)
        if config.height < 2**self.pooled_blocks:
            raise ValueError(f"height {config.height} is too small for arch {config.arch!r} (at least {2 ** self.pooled_blocks} mel bins)")
        self.pool = TemporalPooling(config.pooling, channels)
        self.embed = nn.Sequential(nn.Linear(channels, channels), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(channels, config.num_classes))

    def frames(self, widths: Tensor) -> Tensor:
        return widths // 2**self.pooled_blocks

    def forward(self, images: Tensor, widths: Tensor | None = None) -> Tensor:
        """(N, C_in, H, W), widths (N,) -> logits (N, num_classes)."""
        if widths is not None:
            widths = widths.to(images.device).long()
            x = masked_trunk(self.cnn, images, widths)  # (N, C, H', T), zero past each input's frames
        else:
            x = self.cnn(images)
        x = x.mean(dim=2).transpose(1, 2)  # (N, C, H', T) -> (N, T, C)
        lengths = None if widths is None else self.frames(widths)
        return self.head(self.embed(self.pool(x, lengths)))


def build_classifier(config: ClassifierConfig) -> nn.Module:
    """The model of ``config`` (randomly initialized)."""
    if config.family == "trunk":
        return CRNNPooled(config)
    if config.family == "convrnn":
        return ConvRNNClassifier(config)
    return PannsCNN(config)


def min_width(model: nn.Module) -> int:
    """Narrowest input (columns, log-mel frames) ``model`` gives at least one frame to pool."""
    floor = min_input_width(model.config) if isinstance(model, CRNN) else 1
    for width in range(floor, _MAX_PROBE_WIDTH):
        if int(model.frames(torch.tensor([width]))[0]) >= 1:
            return width
    raise ValueError(f"{type(model).__name__}: no input up to {_MAX_PROBE_WIDTH} columns gives an output frame")
