"""Net2WiderNet: a crnn_compact grown into a crnn reads exactly as before (evaluation and training
mode, masked batches, a per-column projection, RGB), its twin units part after one step, and
tools/widen.py writes a checkpoint the recognizer reads with the same results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT, load_script, render_word
from crnn_ocr.alphabet import Alphabet
from crnn_ocr.checkpoint import load_checkpoint, save_checkpoint
from crnn_ocr.cli import run_cli
from crnn_ocr.model import ModelConfig, build_model
from crnn_ocr.widen import widen


def _small(height: int, channels: int, num_classes: int = 11) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(ModelConfig(num_classes=num_classes, arch="crnn_compact", height=height, in_channels=channels, hidden_size=64))
    for m in model.modules():  # BN statistics and affine terms away from their fresh values
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model


@pytest.mark.parametrize("height, channels", [(32, 1), (64, 3)])
def test_the_widened_model_computes_what_the_small_one_does(height, channels):
    torch.set_num_threads(1)
    small = _small(height, channels).eval()
    before = {k: v.clone() for k, v in small.state_dict().items()}
    large = widen(small, seed=1).eval()
    assert large.config == ModelConfig(num_classes=11, arch="crnn", height=height, in_channels=channels, hidden_size=64)
    reference = build_model(large.config)
    assert [p.shape for p in large.parameters()] == [p.shape for p in reference.parameters()]
    assert all(torch.equal(v, small.state_dict()[k]) for k, v in before.items())  # the source is left alone
    x = torch.rand(3, channels, height, 90, generator=torch.Generator().manual_seed(2)) * 2 - 1
    widths = torch.tensor([90, 61, 37])
    with torch.no_grad():
        for mode in (False, True):  # training mode: BN's batch statistics of twin channels are equal too
            small.train(mode), large.train(mode)
            a, b = small(x, widths), large(x, widths)
            scale = a.abs().max().item()
            assert (a - b).abs().max().item() < 1e-5 * max(1.0, scale)
    first = large.cnn[0].weight
    half = first.shape[0] // 2
    assert torch.equal(first[:half], first[half:])  # twins in, ...
    nxt = large.cnn[4].weight  # ... split unevenly out: so one step of training parts them
    assert not torch.allclose(nxt[:, :half], nxt[:, half:])
    large.train()
    opt = torch.optim.SGD(large.parameters(), lr=0.1)
    large(x).logsumexp(-1).mean().backward()
    opt.step()
    assert not torch.allclose(large.cnn[0].weight[:half], large.cnn[0].weight[half:])


def test_only_compact_models_widen():
    model = build_model(ModelConfig(num_classes=5, arch="crnn"))
    with pytest.raises(ValueError, match="only a crnn_compact model can be widened into a crnn, not 'crnn'"):
        widen(model)
    with pytest.raises(ValueError, match=r"noise must be in \[0, 0.5\)"):
        widen(_small(32, 1), noise=0.5)


def test_widen_tool_writes_a_checkpoint_that_reads_the_same(tmp_path, capsys):
    from crnn_ocr.recognizer import load_recognizer

    tool = load_script("widen_tool", ROOT / "tools" / "widen.py")
    torch.set_num_threads(1)
    alphabet = Alphabet.preset("alphanumeric")
    small = _small(32, 1, alphabet.num_classes)
    ck = tmp_path / "small.pt"
    save_checkpoint(ck, {"kind": "text", "model_config": small.config.to_dict(), "alphabet": alphabet.to_dict(),
                         "preprocess": {"height": 32, "channels": 1, "max_width": 400}, "model": small.state_dict()})
    assert tool.main(["--checkpoint", str(ck), "--out", str(tmp_path / "wide.pt"), "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"wrote {tmp_path / 'wide.pt'}: crnn_compact (") and "-> crnn (" in out
    state = load_checkpoint(tmp_path / "wide.pt")
    assert state["model_config"]["arch"] == "crnn" and state["widened_from"] == "small.pt"
    assert state["alphabet"] == alphabet.to_dict()
    images = [render_word(w) for w in ("widen", "Net2Net", "x")]
    a = load_recognizer(ck, device="cpu").read_batch(images)
    b = load_recognizer(tmp_path / "wide.pt", device="cpu").read_batch(images)
    assert [r.text for r in a] == [r.text for r in b]
    assert np.allclose([r.confidence for r in a], [r.confidence for r in b], atol=1e-5)
    with pytest.raises(SystemExit) as e:
        run_cli(tool.main, ["--checkpoint", str(tmp_path / "wide.pt"), "--out", str(tmp_path / "w2.pt")], prog="widen.py")
    assert e.value.code == 2
    assert capsys.readouterr().err == f"widen.py: error: {tmp_path / 'wide.pt'}: is a crnn model; only crnn_compact can be widened\n"
    assert not Path(tmp_path / "w2.pt").exists()
