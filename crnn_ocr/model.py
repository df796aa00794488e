"""The CRNN family: a convolutional trunk, a BiLSTM sequence model and a linear layer to the classes.

Every architecture maps images ``(N, C_in, H, W)`` to logits ``(N, T, num_classes)``; loss and
decoding live elsewhere. The number of frames ``T`` depends on the width only (``output_length``):

==============  ===================  =========  ====================================================
arch            T(W)                 min W      trunk
==============  ===================  =========  ====================================================
crnn            W // 4 + 1           4          the paper's 7 convs 64-128-256-256-512-512-512 (BN on
                                                each), ~8.3M parameters at 37 classes, H' = H//16 - 1
crnn_compact    W // 4 + 1           4          the same at half width everywhere (channels and LSTM
                                                hidden size halved): about a quarter of the parameters
resnet          (W // 2 + 1) // 2    2          torchvision resnet18 trunk (``resnet34`` also
                                                accepted), 3x3 stride-1 stem, 2x2 max-pool, stride
                                                (2, 1) in layer3/layer4: H' = H // 16
mobilenetv3     (W + 3) // 4         1          torchvision mobilenet_v3_small features
                                                (``mobilenetv3_large`` also accepted), strides after
                                                the first two set to (2, 1): H' = ceil(H / 32)
dtrb_vgg        W // 4 - 1           8          deep-text-recognition-benchmark's VGG (None-VGG-
                                                BiLSTM-CTC, EasyOCR's ``*_g2`` recognizers): 7 convs
                                                F/8-F/4-F/2-F/2-F-F-F (``feature_channels`` F, default
                                                256; BN on the 5th and 6th only), pools 2x2, 2x2,
                                                (2, 1), (2, 1), a final 2x2 conv: H' = H//16 - 1
ds2             (W - 1) // 2 + 1     1          DeepSpeech2's front (Amodei et al. 2016) for
                                                spectrograms: two 11x11 convs of 32 channels, stride
                                                (2, 2) then (2, 1) over (frequency, time), BN and
                                                clipped ReLU; 3 BiLSTM layers of half the hidden
                                                size; H' = ceil(H / 4), projected to the LSTM width
==============  ===================  =========  ====================================================

Heights: the trunk reduces the height to ``H'``. When ``H' > 1`` (e.g. 64 px music staves, 80 mel
bins of speech) the ``C x H'`` features of each column are flattened and projected linearly back to
``C`` before the LSTM, so vertical (frequency) information is kept rather than pooled away.
``dtrb_vgg`` instead averages over ``H'`` and ends with a linear layer after its BiLSTMs, exactly as
the reference does, so its checkpoints import unchanged (``crnn_ocr.deploy.convert``). The crnn and
dtrb_vgg trunks need ``H >= 32``. Torchvision trunks are built with ``weights=None``: nothing is
downloaded, ever.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor, nn

ARCHS = ("crnn", "crnn_compact", "resnet", "resnet18", "resnet34", "mobilenetv3", "mobilenetv3_small", "mobilenetv3_large",
         "dtrb_vgg", "ds2")

# Smallest input width each trunk accepts (a narrower image must be padded first).
_MIN_WIDTH = {"crnn": 4, "resnet": 2, "mobilenetv3": 1, "dtrb_vgg": 8, "ds2": 1}
DEFAULT_LSTM_LAYERS = {"ds2": 3}  # arch -> recurrent layers of a new model (others: ModelConfig's 2)


@dataclass
class ModelConfig:
    """Architecture of a CRNN model (saved inside checkpoints)."""

    num_classes: int
    arch: str = "crnn"  # see the table in the module docstring
    in_channels: int = 1  # 1 gray, 3 RGB
    height: int = 32
    hidden_size: int = 256  # per LSTM direction (halved by crnn_compact)
    lstm_layers: int = 2
    dropout: float = 0.0
    feature_channels: int | None = None  # dtrb_vgg's trunk output channels (None: 256); other archs: None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        """Inverse of ``to_dict``; unknown keys (from a newer version) are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _family(arch: str) -> str:
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")
    if arch.startswith("crnn"):
        return "crnn"
    if arch in ("dtrb_vgg", "ds2"):
        return arch
    return "resnet" if arch.startswith("resnet") else "mobilenetv3"


def output_length(width: int | Tensor, config: ModelConfig) -> int | Tensor:
    """Frames ``T`` the model emits for an input of width ``width`` (an int or a LongTensor)."""
    family = _family(config.arch)
    if family == "crnn":
        return width // 4 + 1
    if family == "dtrb_vgg":
        return width // 4 - 1
    if family == "ds2":
        return (width - 1) // 2 + 1
    if family == "resnet":
        return (width // 2 + 1) // 2
    return (width + 3) // 4


def output_lengths(widths: Tensor, config: ModelConfig) -> Tensor:
    """Vectorized ``output_length``: true widths ``(N,)`` -> CTC input lengths ``(N,)`` long."""
    return output_length(widths.long(), config)


def min_input_width(config: ModelConfig) -> int:
    """Narrowest image the model accepts."""
    return _MIN_WIDTH[_family(config.arch)]


# ---------------------------------------------------------------------------------------- trunks
def _conv_bn_relu(c_in: int, c_out: int, kernel: int = 3, padding: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel, 1, padding, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


def _crnn_trunk(in_channels: int, scale: float) -> nn.Sequential:
    """The paper's 7-conv trunk (channels times ``scale``): (N, C_in, H, W) -> (N, 512s, H//16-1, W//4+1)."""
    c = [max(8, int(round(n * scale))) for n in (64, 128, 256, 256, 512, 512, 512)]
    return nn.Sequential(
        *_conv_bn_relu(in_channels, c[0]),
        nn.MaxPool2d(2, 2),  # H/2, W/2
        *_conv_bn_relu(c[0], c[1]),
        nn.MaxPool2d(2, 2),  # H/4, W/4
        *_conv_bn_relu(c[1], c[2]),
        *_conv_bn_relu(c[2], c[3]),
        nn.MaxPool2d((2, 2), (2, 1), (0, 1)),  # H/8, W/4 + 1
        *_conv_bn_relu(c[3], c[4]),
        *_conv_bn_relu(c[4], c[5]),
        nn.MaxPool2d((2, 2), (2, 1), (0, 1)),  # H/16, W/4 + 2
        *_conv_bn_relu(c[5], c[6], kernel=2, padding=0),  # H/16 - 1, W/4 + 1
    )


def _dtrb_vgg_trunk(in_channels: int, channels: int) -> nn.Sequential:
    """deep-text-recognition-benchmark's VGG_FeatureExtractor, layer for layer (state-dict indices
    included): (N, C_in, H, W) -> (N, F, H//16 - 1, W//4 - 1)."""
    c = [channels // 8, channels // 4, channels // 2, channels]
    return nn.Sequential(
        nn.Conv2d(in_channels, c[0], 3, 1, 1), nn.ReLU(inplace=True),
        nn.MaxPool2d(2, 2),  # H/2, W/2
        nn.Conv2d(c[0], c[1], 3, 1, 1), nn.ReLU(inplace=True),
        nn.MaxPool2d(2, 2),  # H/4, W/4
        nn.Conv2d(c[1], c[2], 3, 1, 1), nn.ReLU(inplace=True),
        nn.Conv2d(c[2], c[2], 3, 1, 1), nn.ReLU(inplace=True),
        nn.MaxPool2d((2, 1), (2, 1)),  # H/8, W/4
        nn.Conv2d(c[2], c[3], 3, 1, 1, bias=False), nn.BatchNorm2d(c[3]), nn.ReLU(inplace=True),
        nn.Conv2d(c[3], c[3], 3, 1, 1, bias=False), nn.BatchNorm2d(c[3]), nn.ReLU(inplace=True),
        nn.MaxPool2d((2, 1), (2, 1)),  # H/16, W/4
        nn.Conv2d(c[3], c[3], 2, 1, 0), nn.ReLU(inplace=True),  # H/16 - 1, W/4 - 1
    )


def _ds2_trunk(in_channels: int) -> nn.Sequential:
    """DeepSpeech2's two strided convolutions: (N, C_in, H, W) -> (N, 32, ceil(H / 4), (W - 1) // 2 + 1)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 11, (2, 2), 5, bias=False), nn.BatchNorm2d(32), nn.Hardtanh(0.0, 20.0),  # H/2, W/2
        nn.Conv2d(32, 32, 11, (2, 1), 5, bias=False), nn.BatchNorm2d(32), nn.Hardtanh(0.0, 20.0),  # H/4, W/2
    )


def _resnet_trunk(arch: str, in_channels: int) -> nn.Sequential:
    """torchvision ResNet-18/34 body: (N, C_in, H, W) -> (N, 512, H//16, (W//2+1)//2)."""
    from torchvision.models import resnet18, resnet34

    net = (resnet34 if arch == "resnet34" else resnet18)(weights=None)
    net.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)  # no early downsampling at 32 px
    net.maxpool = nn.MaxPool2d(2, 2)  # H/2, W/2
    for layer in (net.layer3, net.layer4):  # keep the width resolution: stride (2, 1)
        block = layer[0]
        block.conv1.stride = (2, 1)
        if block.downsample is not None:
            block.downsample[0].stride = (2, 1)
    return nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4)


def _mobilenet_trunk(arch: str, in_channels: int) -> nn.Sequential:
    """torchvision MobileNetV3 features: (N, C_in, H, W) -> (N, 576|960, ceil(H/32), ceil(W/4))."""
    from torchvision.models import mobilenet_v3_large, mobilenet_v3_small

    features = (mobilenet_v3_large if arch == "mobilenetv3_large" else mobilenet_v3_small)(weights=None).features
    first = features[0][0]
    features[0][0] = nn.Conv2d(in_channels, first.out_channels, 3, 2, 1, bias=False)
    strided = 0
    for module in features.modules():  # the first two stride-2 convs stay, the rest halve the height only
        if isinstance(module, nn.Conv2d) and module.stride == (2, 2):
            strided += 1
            if strided > 2:
                module.stride = (2, 1)
    return features


class BidirectionalLSTM(nn.Module):
    """BiLSTM plus a linear layer: (N, T, D_in) -> (N, T, D_out), as in the reference CRNN.

    With ``lengths`` (N,) the LSTM runs on packed sequences: each item's backward direction starts
    at its own last frame, so frames past an item's length (batch padding) never reach its real
    ones. Those padded output frames hold ``linear(0)`` and mean nothing.
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int) -> None:
        super().__init__()
        self.rnn = nn.LSTM(input_size, hidden_size, bidirectional=True, batch_first=True)
        self.linear = nn.Linear(2 * hidden_size, output_size)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        if lengths is None:
            x, _ = self.rnn(x)  # (N, T, D_in) -> (N, T, 2*hidden)
        else:
            total = x.shape[1]
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, _ = self.rnn(packed)
            x, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=total)  # (N, T, 2*hidden)
        return self.linear(x)  # (N, T, D_out)


def _fill_past(x: Tensor, widths: Tensor, value: float) -> Tensor:
    """(N, C, H, W) features with every column at or past each item's width (N,) set to ``value``."""
    real = torch.arange(x.shape[3], device=x.device)[None, :] < widths[:, None]  # (N, W)
    return torch.where(real[:, None, None, :], x, torch.full((), value, dtype=x.dtype, device=x.device))


def _width_after(module: nn.Module, widths: Tensor) -> Tensor:
    """Output width of a Conv2d or MaxPool2d for input widths (N,): the layer's arithmetic."""
    pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    kernel, stride, padding = pair(module.kernel_size)[1], pair(module.stride)[1], pair(module.padding)[1]
    dilation = pair(getattr(module, "dilation", 1))[1]
    return torch.div(widths + 2 * padding - dilation * (kernel - 1) - 1, stride, rounding_mode="floor") + 1


def _is_maskable(trunk: nn.Module) -> bool:
    """Whether ``masked_trunk`` can run ``trunk`` exactly: a plain chain of convs, pools and per-element layers."""
    elementwise = (nn.BatchNorm2d, nn.ReLU, nn.Hardtanh, nn.Dropout, nn.Identity)
    averages_zeros = lambda m: isinstance(m, nn.AvgPool2d) and m.count_include_pad  # noqa: E731  (zero padding counts)
    return isinstance(trunk, nn.Sequential) and all(
        isinstance(m, elementwise) or ((isinstance(m, (nn.Conv2d, nn.MaxPool2d)) or averages_zeros(m)) and not getattr(m, "ceil_mode", False))
        for m in trunk
    )


def masked_trunk(trunk: nn.Sequential, x: Tensor, widths: Tensor) -> Tensor:
    """Run a plain conv trunk on a right-padded batch as if each image were alone.

    Before every convolution the columns past each item's width are zeroed (what the
    convolution's own zero padding shows a lone image), before every max-pool they are -inf
    (its padding), before an average pool (counting its zero padding) zero again, so the real
    columns' features equal those of the image run alone; BatchNorm
    in eval mode, ReLU and dropout act per element. (N, C_in, H, W), widths (N,) -> features
    (N, C, H', T), zero past each item's ``output_length(width)`` frames.
    """
    for module in trunk:
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            x = _fill_past(x, widths, float("-inf") if isinstance(module, nn.MaxPool2d) else 0.0)
            widths = _width_after(module, widths)
        x = module(x)
    return _fill_past(x, widths, 0.0)


class MeanOverHeight(nn.Module):
    """Average the ``H'`` rows of each column: (N, T, C*H') -> (N, T, C), as DTRB's AdaptiveAvgPool2d((None, 1))."""

    def __init__(self, feature_height: int) -> None:
        super().__init__()
        self.feature_height = feature_height

    def forward(self, x: Tensor) -> Tensor:
        n, t, _ = x.shape
        return x.reshape(n, t, -1, self.feature_height).mean(dim=3)  # (N, T, C, H') -> (N, T, C)


class CRNN(nn.Module):
    """Conv trunk -> column features -> stacked BiLSTMs -> logits ``(N, T, num_classes)``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        family = _family(config.arch)
        if config.num_classes < 2:
            raise ValueError(f"num_classes must be at least 2 (blank + one symbol), got {config.num_classes}")
        if config.lstm_layers < 1:
            raise ValueError(f"lstm_layers must be at least 1, got {config.lstm_layers}")
        if config.feature_channels is not None and family != "dtrb_vgg":
            raise ValueError(f"feature_channels applies to arch 'dtrb_vgg' only, not {config.arch!r}")
        self.config = config
        hidden = config.hidden_size
        if family == "crnn":
            compact = config.arch == "crnn_compact"
            self.cnn = _crnn_trunk(config.in_channels, 0.5 if compact else 1.0)
            hidden = max(1, hidden // 2) if compact else hidden
        elif family == "ds2":
            self.cnn = _ds2_trunk(config.in_channels)
            hidden = max(1, hidden // 2)
        elif family == "dtrb_vgg":
            feature_channels = config.feature_channels or 256
            if feature_channels < 8 or feature_channels % 8:
                raise ValueError(f"feature_channels must be a positive multiple of 8, got {feature_channels}")
            self.cnn = _dtrb_vgg_trunk(config.in_channels, feature_channels)
        elif family == "resnet":
            self.cnn = _resnet_trunk(config.arch, config.in_channels)
        else:
            self.cnn = _mobilenet_trunk(config.arch, config.in_channels)

        self.maskable = _is_maskable(self.cnn)  # masked_trunk applies (not to torchvision's residual trunks)
        channels, feature_height = self._probe_trunk(config)
        # (N, T, C*H') -> (N, T, C): keeps what each row of a tall feature map saw (dtrb_vgg: averages)
        if feature_height == 1:
            self.project: nn.Module = nn.Identity()
        elif family == "dtrb_vgg":
            self.project = MeanOverHeight(feature_height)
        elif family == "ds2":  # 32 channels x H' frequency rows: projected to the LSTM's width, not to 32
            self.project = nn.Linear(channels * feature_height, 2 * hidden)
            channels = 2 * hidden
        else:
            self.project = nn.Linear(channels * feature_height, channels)
        self.feature_height = feature_height
        self.dropout = nn.Dropout(config.dropout)
        # dtrb_vgg: every BiLSTM outputs `hidden`, then a separate Linear(hidden, num_classes)
        separate_head = family == "dtrb_vgg"
        layers: list[nn.Module] = []
        size = channels
        for i in range(config.lstm_layers):
            last = i == config.lstm_layers - 1
            layers.append(BidirectionalLSTM(size, hidden, config.num_classes if last and not separate_head else hidden))
            if not last and config.dropout > 0:
                layers.append(nn.Dropout(config.dropout))
            size = hidden
        if separate_head:
            layers.append(nn.Linear(hidden, config.num_classes))
        self.rnn = nn.Sequential(*layers)

    @torch.no_grad()
    def _probe_trunk(self, config: ModelConfig) -> tuple[int, int]:
        """Channels and height H' of the trunk's output for this config's input height."""
        was_training = self.cnn.training
        self.cnn.eval()  # no running-stat updates from the probe
        try:
            probe = torch.zeros(1, config.in_channels, config.height, 64)
            out = self.cnn(probe)  # (1, C, H', T)
        except RuntimeError as e:
            raise ValueError(f"height {config.height} is too small for arch {config.arch!r}: {e}") from None
        finally:
            self.cnn.train(was_training)
        if out.shape[2] < 1:
            raise ValueError(f"height {config.height} is too small for arch {config.arch!r}")
        return int(out.shape[1]), int(out.shape[2])

    def output_length(self, width: int | Tensor) -> int | Tensor:
        """Frames emitted for width ``width`` (int or LongTensor); see the module docstring."""
        return output_length(width, self.config)

    def output_lengths(self, widths: Tensor) -> Tensor:
        return output_lengths(widths, self.config)

    @property
    def min_width(self) -> int:
        return min_input_width(self.config)

    def forward(self, images: Tensor, widths: Tensor | None = None) -> Tensor:
        """(N, C_in, H, W) float images in [-1, 1] -> (N, T, num_classes) logits, T = output_length(W).

        ``widths`` (N,): each image's true width in a right-padded batch. Then no padding column
        changes an image's real frames: the trunk masks the padding before every convolution and
        pool (``masked_trunk``; torchvision trunks, which are not plain chains, are not masked),
        and each BiLSTM runs on packed sequences of ``output_length(widths)`` frames. An image's
        logits then equal those it gets alone (to float rounding); frames past its length are
        meaningless. Without ``widths`` every column counts as real.
        """
        if images.dim() != 4:
            raise ValueError(f"expected images of shape (N, C, H, W), got {tuple(images.shape)}")
        _, c, h, w = images.shape
        if c != self.config.in_channels or h != self.config.height:
            raise ValueError(
                f"expected {self.config.in_channels} channel(s) of height {self.config.height}, got {c} x {h}"
            )
        if w < self.min_width:
            raise ValueError(f"width {w} is below the minimum {self.min_width} of arch {self.config.arch!r}; pad it")
        lengths = None
        if widths is not None:
            if widths.shape != (images.shape[0],):
                raise ValueError(f"widths must have shape ({images.shape[0]},), got {tuple(widths.shape)}")
            widths = widths.to(device=images.device, dtype=torch.long)
            if torch.jit.is_tracing() or bool((widths != w).any()):  # all full width: nothing to mask
                lengths = self.output_lengths(widths)
        if lengths is not None and self.maskable:
            x = masked_trunk(self.cnn, images, widths)  # (N, C_in, H, W) -> (N, C, H', T)
        else:
            x = self.cnn(images)  # (N, C_in, H, W) -> (N, C, H', T)
        n, c, h, t = x.shape
        x = x.permute(0, 3, 1, 2).reshape(n, t, c * h)  # (N, T, C*H')
        x = self.dropout(self.project(x))  # (N, T, D)
        for layer in self.rnn:  # (N, T, D) -> (N, T, num_classes)
            x = layer(x, lengths) if isinstance(layer, BidirectionalLSTM) else layer(x)
        return x


def build_model(config: ModelConfig) -> CRNN:
    """The model for ``config`` (randomly initialized; nothing is downloaded). The config of
    another model family (a wing's classifier) builds its own model: ``config.build()``."""
    if not isinstance(config, ModelConfig) and hasattr(config, "build"):
        return config.build()
    return CRNN(config)
