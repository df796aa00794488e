"""CRNN family: output length T(W) against the real forward pass, sizes, precision, training signal."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from crnn_ocr.model import ARCHS, ModelConfig, build_model, min_input_width, output_length, output_lengths

torch.set_num_threads(1)

PAPER_PARAMS = 8.3e6


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    return {arch: build_model(ModelConfig(num_classes=37, arch=arch)).eval() for arch in ARCHS}


@pytest.mark.parametrize("arch", ARCHS)
def test_output_length_matches_forward(models, arch):
    model = models[arch]
    cfg = model.config
    lo = min_input_width(cfg)
    widths = list(range(lo, lo + 9)) + [16, 31, 32, 33, 57, 100, 129]
    with torch.no_grad():
        for w in widths:
            logits = model(torch.zeros(1, 1, 32, w))
            assert logits.shape == (1, output_length(w, cfg), 37), (arch, w)
            assert model.output_length(w) == logits.shape[1]
    assert output_lengths(torch.tensor(widths), cfg).tolist() == [output_length(w, cfg) for w in widths]


@pytest.mark.parametrize("arch", ["crnn", "resnet", "mobilenetv3"])
def test_below_min_width_is_a_clear_error(models, arch):
    model = models[arch]
    if model.min_width > 1:
        with pytest.raises(ValueError, match="below the minimum"):
            model(torch.zeros(1, 1, 32, model.min_width - 1))


def test_paper_geometry():
    cfg = ModelConfig(num_classes=37)
    assert output_length(100, cfg) == 26  # the CRNN paper's 100 px -> 26 frames
    assert min_input_width(cfg) == 4


def test_parameter_counts(models):
    paper = n_params(models["crnn"])
    assert abs(paper - PAPER_PARAMS) / PAPER_PARAMS < 0.05, paper
    assert 0.2 <= n_params(models["crnn_compact"]) / paper <= 0.3


@pytest.mark.parametrize("height", [64, 80])
def test_taller_inputs_are_flattened_and_projected(height):
    model = build_model(ModelConfig(num_classes=10, arch="crnn_compact", height=height)).eval()
    assert model.feature_height > 1
    with torch.no_grad():
        out = model(torch.randn(2, 1, height, 40))
    assert out.shape == (2, output_length(40, model.config), 10)


def test_bad_inputs():
    with pytest.raises(ValueError, match="unknown arch"):
        build_model(ModelConfig(num_classes=10, arch="vgg"))
    with pytest.raises(ValueError, match="too small"):
        build_model(ModelConfig(num_classes=10, height=16))
    model = build_model(ModelConfig(num_classes=10, arch="crnn_compact")).eval()
    with pytest.raises(ValueError, match="height 32"):
        model(torch.zeros(1, 1, 48, 40))
    with pytest.raises(ValueError, match="1 channel"):
        model(torch.zeros(1, 3, 32, 40))


def test_rgb_input_and_config_round_trip():
    cfg = ModelConfig(num_classes=12, arch="crnn_compact", in_channels=3, hidden_size=64, dropout=0.1)
    assert ModelConfig.from_dict({**cfg.to_dict(), "future_field": 1}) == cfg
    model = build_model(cfg).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 48)).shape == (2, 13, 12)


def test_channels_last_and_bf16_autocast():
    model = build_model(ModelConfig(num_classes=37, arch="crnn_compact")).eval()
    x = torch.randn(2, 1, 32, 64)
    with torch.no_grad():
        ref = model(x)
        cl = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
        torch.testing.assert_close(cl, ref, rtol=1e-4, atol=1e-4)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
    assert low.shape == ref.shape and torch.isfinite(low.float()).all()
    assert (low.float().argmax(-1) == ref.argmax(-1)).float().mean() > 0.5


def test_a_few_steps_drive_the_ctc_loss_down():
    torch.manual_seed(0)
    cfg = ModelConfig(num_classes=5, arch="crnn_compact", hidden_size=64)
    model = build_model(cfg)
    images = torch.randn(4, 1, 32, 48)
    widths = torch.tensor([48, 40, 44, 48])
    targets = torch.tensor([1, 2, 3, 4, 4, 1, 3, 2, 2, 1])
    target_lengths = torch.tensor([3, 3, 2, 2])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        log_probs = model(images).log_softmax(-1).transpose(0, 1)  # (T, N, C)
        loss = F.ctc_loss(log_probs, targets, model.output_lengths(widths), target_lengths, blank=0, zero_infinity=True)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
