"""The Convolutional RNN layer (Keren & Schuller 2016, arXiv 1602.05875) and its plain-convolution twin.

``ConvRNN1d`` is shaped like a 1-D convolution over a sequence of frames: it takes windows of
``kernel_size`` frames every ``stride`` frames, and its filter is a recurrent network: each window's
frames run through a GRU (or LSTM), optionally bidirectional, and the window's feature vector is its
last hidden state (the forward direction after the window's last frame, the backward direction
after its first). ``(N, T, in_features) -> (N, T', out_channels x directions)`` with
``T' = (T - kernel_size) // stride + 1``, as ``Conv1d`` without padding. ``FrameConv1d`` is the
paper's comparison: a ``Conv1d`` with the same kernel, stride and output width, then ReLU.

A window holds only frames of its own input, so in a right-padded batch the first
``output_length(T_i)`` outputs of item ``i`` equal those it gets alone.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

RNNS = {"gru": nn.GRU, "lstm": nn.LSTM}


def window_count(length: int | Tensor, kernel_size: int, stride: int) -> int | Tensor:
    """Windows of ``kernel_size`` frames every ``stride`` in ``length`` frames (an int or a LongTensor)."""
    return (length - kernel_size) // stride + 1


class ConvRNN1d(nn.Module):
    """A convolution whose filter is an RNN: (N, T, in_features) -> (N, T', out_channels x directions).

    Args:
        in_features: features per input frame.
        out_channels: hidden units of the RNN (per direction).
        kernel_size: frames per window.
        stride: frames between window starts.
        rnn: "gru" or "lstm".
        bidirectional: also read each window backwards; its vector is ``[forward, backward]``.
    """

    def __init__(self, in_features: int, out_channels: int, kernel_size: int, stride: int = 1, rnn: str = "gru",
                 bidirectional: bool = False) -> None:
        super().__init__()
        if rnn not in RNNS:
            raise ValueError(f"rnn must be one of {', '.join(RNNS)}, got {rnn!r}")
        if kernel_size < 1 or stride < 1:
            raise ValueError(f"kernel_size and stride must be positive, got {kernel_size} and {stride}")
        self.in_features, self.out_channels = in_features, out_channels
        self.kernel_size, self.stride = kernel_size, stride
        self.directions = 2 if bidirectional else 1
        self.rnn = RNNS[rnn](in_features, out_channels, batch_first=True, bidirectional=bidirectional)

    @property
    def out_features(self) -> int:
        return self.out_channels * self.directions

    def output_length(self, length: int | Tensor) -> int | Tensor:
        """T' for ``length`` input frames."""
        return window_count(length, self.kernel_size, self.stride)

    def forward(self, x: Tensor) -> Tensor:
        """(N, T, in_features) -> (N, T', out_channels x directions); ``ValueError`` when T < kernel_size."""
        n, t, d = x.shape
        if not torch.jit.is_tracing() and t < self.kernel_size:
            raise ValueError(f"{t} frames are fewer than the kernel size {self.kernel_size}")
        windows = window_count(t, self.kernel_size, self.stride)
        starts = torch.arange(windows, device=x.device) * self.stride  # (T',)
        index = starts[:, None] + torch.arange(self.kernel_size, device=x.device)[None, :]  # (T', k)
        frames = x[:, index].reshape(-1, self.kernel_size, d)  # (N, T', k, D) -> (N * T', k, D)
        _, hidden = self.rnn(frames)  # (directions, N * T', C): forward after the last frame, backward after the first
        if isinstance(hidden, tuple):  # LSTM: (h, c)
            hidden = hidden[0]
        return hidden.permute(1, 0, 2).reshape(n, -1, self.out_features)  # (N * T', dirs, C) -> (N, T', dirs * C)

    def extra_repr(self) -> str:
        return (f"{self.in_features}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"rnn={type(self.rnn).__name__}, directions={self.directions}")


class FrameConv1d(nn.Module):
    """``Conv1d`` + ReLU over frames, shaped as ``ConvRNN1d``: (N, T, in_features) -> (N, T', out_features)."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.out_features = kernel_size, stride, out_features
        self.conv = nn.Conv1d(in_features, out_features, kernel_size, stride)

    def output_length(self, length: int | Tensor) -> int | Tensor:
        return window_count(length, self.kernel_size, self.stride)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)  # (N, D, T) -> (N, C, T') -> (N, T', C)
