"""Grow a trained ``crnn_compact`` into a ``crnn`` that computes the same function (Net2WiderNet).

    python tools/widen.py --checkpoint crnn_ocr/weights/english_crnn_compact.pt --out runs/english_wide.pt
    python tools/train.py --init-from runs/english_wide.pt ...      # the 8.3M model, from where the small one is

``crnn_compact`` is ``crnn`` at half the width everywhere (trunk channels, the per-column
projection, the LSTMs' hidden units and the layers between them), so each unit of the small
model can become two units of the large one (Chen, Goodfellow and Shlens 2016, "Net2Net"): both
copies get the unit's incoming weights, BN parameters and statistics, and LSTM gate rows, so they
compute the same value; the weights leaving the pair are the unit's outgoing weights split into
``1/2 + e`` and ``1/2 - e`` (``e`` drawn per unit in ``[-noise, noise]``), so the next layer sees the
same sum. The large model's logits equal the small one's (to float rounding) in evaluation and in
training mode (BatchNorm's batch statistics of two equal channels are equal), while the unequal
split makes the copies' gradients differ, so training separates them (with an even split they
would stay twins forever). The input channels and the output classes are not widened.
"""

from __future__ import annotations

import copy
import dataclasses

import torch
from torch import Tensor, nn

from crnn_ocr.model import CRNN, BidirectionalLSTM, ModelConfig, build_model

_Map = tuple[Tensor, Tensor]  # (small unit of each large unit, the share of its outgoing weight)


def _copies(n_small: int, generator: torch.Generator, noise: float) -> _Map:
    """Large unit ``k`` and ``k + n_small`` are small unit ``k``; their shares ``1/2 +- e_k``."""
    e = (torch.rand(n_small, generator=generator, dtype=torch.float64) * 2 - 1) * noise
    return torch.arange(2 * n_small) % n_small, torch.cat([0.5 + e, 0.5 - e])


def _identity(n: int) -> _Map:
    return torch.arange(n), torch.ones(n, dtype=torch.float64)


def _inputs(weight: Tensor, dim: int, m: _Map) -> Tensor:
    """``weight`` with its input dimension ``dim`` widened by ``m`` (each input's share of it)."""
    src, share = m
    shape = [1] * weight.dim()
    shape[dim] = -1
    return weight.index_select(dim, src) * share.view(shape)


def _outputs(t: Tensor, m: _Map, gates: int = 1) -> Tensor:
    """Rows of ``t`` (dim 0) copied by ``m``, within each of ``gates`` blocks (LSTM i, f, g, o)."""
    n_small = t.shape[0] // gates
    return t.index_select(0, torch.cat([m[0] + g * n_small for g in range(gates)]))


def _lstm(small: nn.LSTM, large: nn.LSTM, inp: _Map, hidden: tuple[_Map, _Map]) -> None:
    """Both directions of a one-layer bidirectional LSTM: gate rows copied, inputs and the
    recurrent hidden units widened (each direction's own split)."""
    for suffix, h in (("", hidden[0]), ("_reverse", hidden[1])):
        w_ih, w_hh = getattr(small, f"weight_ih_l0{suffix}"), getattr(small, f"weight_hh_l0{suffix}")
        getattr(large, f"weight_ih_l0{suffix}").copy_(_inputs(_outputs(w_ih, h, 4), 1, inp))
        getattr(large, f"weight_hh_l0{suffix}").copy_(_inputs(_outputs(w_hh, h, 4), 1, h))
        for name in ("bias_ih_l0", "bias_hh_l0"):
            getattr(large, name + suffix).copy_(_outputs(getattr(small, name + suffix), h, 4))


def widen_config(config: ModelConfig) -> ModelConfig:
    """The ``crnn`` config a ``crnn_compact`` one grows into (everything else kept)."""
    if config.arch != "crnn_compact":
        raise ValueError(f"only a crnn_compact model can be widened into a crnn, not {config.arch!r}")
    return dataclasses.replace(config, arch="crnn")


@torch.no_grad()
def widen(small: CRNN, *, noise: float = 0.1, seed: int = 0) -> CRNN:
    """A ``crnn`` computing what the ``crnn_compact`` model ``small`` computes (module docstring);
    ``noise`` < 0.5 bounds the split of each unit's outgoing weights around an even one."""
    if not 0 <= noise < 0.5:
        raise ValueError(f"noise must be in [0, 0.5), got {noise}")
    large = build_model(widen_config(small.config)).double()
    small = copy.deepcopy(small).double()
    g = torch.Generator().manual_seed(seed)
    current = _identity(small.config.in_channels)  # the map of the tensor flowing in
    for s, big in zip(small.cnn, large.cnn):
        if isinstance(s, nn.Conv2d):
            out = _copies(s.out_channels, g, noise)
            big.weight.copy_(_inputs(_outputs(s.weight, out), 1, current))
            if s.bias is not None:
                big.bias.copy_(_outputs(s.bias, out))
            current = out
        elif isinstance(s, nn.BatchNorm2d):
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(big, name).copy_(_outputs(getattr(s, name), current))
            big.num_batches_tracked.copy_(s.num_batches_tracked)
    if isinstance(small.project, nn.Linear):  # (C*H') -> C: inputs are channel-major, H' rows each
        rows = small.feature_height
        src, share = current
        per_row = (src.repeat_interleave(rows) * rows + torch.arange(rows).repeat(len(src)), share.repeat_interleave(rows))
        out = _copies(small.project.out_features, g, noise)
        large.project.weight.copy_(_inputs(_outputs(small.project.weight, out), 1, per_row))
        large.project.bias.copy_(_outputs(small.project.bias, out))
        current = out
    layers = [(s, b) for s, b in zip(small.rnn, large.rnn) if isinstance(s, BidirectionalLSTM)]
    for i, (s, b) in enumerate(layers):
        hidden = (_copies(s.rnn.hidden_size, g, noise), _copies(s.rnn.hidden_size, g, noise))
        _lstm(s.rnn, b.rnn, current, hidden)
        last = i == len(layers) - 1
        out = _identity(s.linear.out_features) if last else _copies(s.linear.out_features, g, noise)
        both = (torch.cat([hidden[0][0], hidden[1][0] + s.rnn.hidden_size]), torch.cat([hidden[0][1], hidden[1][1]]))
        b.linear.weight.copy_(_inputs(_outputs(s.linear.weight, out), 1, both))
        b.linear.bias.copy_(_outputs(s.linear.bias, out))
        current = out
    return large.float()
