"""Test-time BatchNorm adaptation (crnn_ocr.adapt): the statistics are exactly those of the inputs,
layer by layer in forward order, independent of input order; the readers adapt through it,
refuse a backend that is not torch, and infer.py --adapt reads with the adapted model."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import png_bytes, render_word
from crnn_ocr.adapt import adapt_batchnorm, batchnorm_layers


class TwoNorms(torch.nn.Module):
    """conv -> BN -> ReLU -> conv -> BN, the second BN declared first (module order != forward order)."""

    def __init__(self) -> None:
        super().__init__()
        self.bn2 = torch.nn.BatchNorm2d(2)
        self.conv1 = torch.nn.Conv2d(1, 3, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(3)
        self.conv2 = torch.nn.Conv2d(3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))


def _population(xs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and unbiased variance over every position of every (1, C, H, W) tensor."""
    flat = torch.cat([x.double().transpose(0, 1).reshape(x.shape[1], -1) for x in xs], dim=1)
    return flat.mean(1), flat.var(1, unbiased=True)


def test_statistics_are_the_inputs_layer_by_layer_in_forward_order():
    torch.manual_seed(0)
    model = TwoNorms().eval()
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    inputs = [3.0 + 2.0 * torch.randn(1, 1, 4, w) for w in (5, 9, 7)]  # widths differ: nothing is padded
    again = copy.deepcopy(model)
    assert adapt_batchnorm(model, inputs, model) == 2
    with torch.no_grad():
        h1 = [model.conv1(x) for x in inputs]
        mean1, var1 = _population(h1)
        assert torch.allclose(model.bn1.running_mean.double(), mean1, atol=1e-5)
        assert torch.allclose(model.bn1.running_var.double(), var1, atol=1e-5)
        h2 = [model.conv2(torch.relu(model.bn1(h))) for h in h1]  # with bn1 already adapted
        mean2, var2 = _population(h2)
        assert torch.allclose(model.bn2.running_mean.double(), mean2, atol=1e-5)
        assert torch.allclose(model.bn2.running_var.double(), var2, atol=1e-5)
        out = torch.cat([model(x).flatten(2) for x in inputs], dim=2)  # normalized: about zero mean, unit variance
    assert out.mean(dim=(0, 2)).abs().max() < 1e-4 and (out.var(dim=(0, 2)) - 1).abs().max() < 1e-3
    assert not model.training
    assert all(torch.equal(model.state_dict()[k], v) for k, v in weights.items())  # weights untouched
    adapt_batchnorm(again, inputs[::-1], again)  # the order of the inputs does not matter
    assert torch.allclose(again.bn2.running_var, model.bn2.running_var, atol=1e-6)


def test_no_inputs_or_no_batchnorm_is_a_value_error():
    with pytest.raises(ValueError, match="no inputs"):
        adapt_batchnorm(TwoNorms(), [], TwoNorms())
    conv = torch.nn.Conv2d(1, 1, 1)
    with pytest.raises(ValueError, match=r"the model \(Conv2d\) has no BatchNorm layers"):
        adapt_batchnorm(conv, [torch.zeros(1, 1, 2, 2)], conv)


@pytest.fixture
def recognizer(tmp_path):
    from crnn_ocr.alphabet import Alphabet
    from crnn_ocr.checkpoint import save_checkpoint
    from crnn_ocr.model import ModelConfig, build_model
    from crnn_ocr.recognizer import load_recognizer

    torch.manual_seed(1)
    config = ModelConfig(num_classes=11, arch="crnn_compact")
    path = tmp_path / "digits.pt"
    save_checkpoint(path, {"kind": "text", "model_config": config.to_dict(), "alphabet": Alphabet.preset("digits").to_dict(),
                           "frontend": {"kind": "image", "height": 32, "channels": 1, "max_width": 400},
                           "model": build_model(config).state_dict()})
    return path, load_recognizer(path, backend="torch", device="cpu")


def test_a_recognizer_adapts_its_torch_model_and_reads_with_it(recognizer):
    path, rec = recognizer
    images = [rec.prepare(png_bytes(render_word(w))) for w in ("123", "4567", "89", "5050")]
    before = rec.log_probs(images[:1])[0]
    layers = batchnorm_layers(rec.backend.model)
    means = [m.running_mean.clone() for m in layers]
    assert rec.adapt_prepared(images) == len(layers) > 0
    assert all(not torch.equal(m.running_mean, old) for m, old in zip(layers, means))
    after = rec.log_probs(images[:1])[0]
    assert after.shape == before.shape and not np.allclose(after, before)
    assert rec.read_prepared(images[:1])[0].text == rec.decoder.decode(after[0]).text
    # the same through adapt() on encoded sources
    from crnn_ocr.recognizer import load_recognizer

    other = load_recognizer(path, backend="torch", device="cpu")
    other.adapt([png_bytes(render_word(w)) for w in ("123", "4567", "89", "5050")])
    assert np.allclose(other.log_probs(images[:1])[0], after, atol=1e-5)


def test_a_backend_that_is_not_torch_cannot_adapt(recognizer):
    from crnn_ocr.recognizer import Recognizer

    _, rec = recognizer
    onnx_like = SimpleNamespace(name="onnx", uses_torch=False, output_length=rec.backend.output_length)
    with pytest.raises(ValueError, match="adapt: adapting needs the PyTorch backend .* not 'onnx'"):
        Recognizer(onnx_like, rec.frontend, rec.decoder).adapt_prepared([np.zeros((32, 40), np.uint8)])


def word_files(folder):
    """Four word images and an undecodable ``bad.png`` in ``folder``; the four paths."""
    files = []
    for i, w in enumerate(("123", "4567", "89", "5050")):
        files.append(folder / f"w{i}.png")
        files[-1].write_bytes(png_bytes(render_word(w)))
    (folder / "bad.png").write_bytes(b"not an image")
    return files


def test_infer_adapt_reads_with_the_adapted_model(recognizer, tmp_path):
    from test_tools import run_tool

    path, rec = recognizer
    files = word_files(tmp_path)
    r = run_tool("infer.py", "--image", *files, tmp_path / "bad.png", "--checkpoint", path, "--adapt")
    assert r.returncode == 1  # the bad file is named when it is read, the others are read
    layers = len(batchnorm_layers(rec.backend.model))
    assert f"infer.py: adapted {layers} BatchNorm layers to 4 inputs" in r.stderr and "bad.png" in r.stderr
    rec.adapt([str(f) for f in files])
    expected = [f"{f}\t{res.text}\t{res.confidence:.4f}" for f, res in zip(files, rec.read_batch([str(f) for f in files]))]
    assert r.stdout.splitlines() == expected
    r = run_tool("infer.py", "--image", tmp_path / "bad.png", "--checkpoint", path, "--adapt")
    assert r.returncode == 2 and r.stderr.strip() == "infer.py: error: --adapt: none of the 1 inputs could be read"


def test_adapt_tool_writes_a_checkpoint_that_reads_as_adapted(recognizer, tmp_path):
    from crnn_ocr.recognizer import load_recognizer
    from test_tools import run_tool

    path, rec = recognizer
    files = word_files(tmp_path)
    out = tmp_path / "adapted.pt"
    r = run_tool("adapt.py", "--checkpoint", path, "--image", *files, tmp_path / "bad.png", "--out", out)
    assert r.returncode == 0, r.stderr
    layers = len(batchnorm_layers(rec.backend.model))
    assert r.stdout.strip() == f"wrote {out}: {layers} BatchNorm layers adapted to 4 inputs (1 unreadable, skipped)"
    assert r.stderr.count("\n") == 1 and "bad.png" in r.stderr
    assert torch.load(out, weights_only=True)["adapted_on"] == "4 image inputs"
    rec.adapt([str(f) for f in files])
    image = rec.prepare(str(files[0]))
    saved = load_recognizer(out, backend="torch", device="cpu")
    assert np.allclose(saved.log_probs([image])[0], rec.log_probs([image])[0], atol=1e-6)
    for args, message in ((["--checkpoint", "m.onnx", "--image", files[0]], "an ONNX export's statistics are fixed"),
                          (["--checkpoint", path, "--audio", files[0]], "digits.pt: reads image, not --audio files"),
                          (["--checkpoint", path, "--image", tmp_path / "bad.png"], "none of the 1 inputs could be read")):
        r = run_tool("adapt.py", *args, "--out", tmp_path / "x.pt")
        assert r.returncode == 2 and message in r.stderr.splitlines()[-1], r.stderr
    assert not (tmp_path / "x.pt").exists()


def test_self_training_learns_its_own_lexicon_readings_and_readapts(recognizer, tmp_path):
    from crnn_ocr.data import iter_lmdb_samples, write_lmdb
    from crnn_ocr.recognizer import load_recognizer
    from crnn_ocr.self_training import self_train

    path, rec = recognizer
    words = ("123", "4567", "89", "5050")
    sources = [png_bytes(render_word(w)) for w in words]
    lexicon = ["123", "4567", "89", "5050", "777"]
    before = load_recognizer(path, backend="torch", device="cpu", lexicon=lexicon, beam_width=8)
    before.adapt(sources)
    expected = [r.text for r in before.read_batch(sources)]  # what the adapted model reads: the labels it trains on
    keep = tmp_path / "keep"
    write_lmdb(keep, [(png_bytes(render_word("2468")), "2468")])
    trained, report = self_train(path, [*sources[:2], b"not an image", *sources[2:]], tmp_path / "work", lexicon=lexicon,
                                 steps=3, batch_size=2, keep_data=[str(keep)], keep_shares=[0.5])
    assert (report.inputs, report.unreadable, report.kept, report.left_out, report.steps) == (5, 1, 4, 0, 3)
    assert list(report.labels) == [*expected[:2], None, *expected[2:]] and report.layers == len(batchnorm_layers(rec.backend.model))
    assert [label for _, _, label in iter_lmdb_samples(tmp_path / "work" / "pseudo_labels")] == expected
    assert all(e in lexicon for e in expected)
    state = torch.load(report.checkpoint, weights_only=False)
    assert state["step"] == 3 and state["train_config"]["data_ratios"] == [0.5, 0.5]
    again = load_recognizer(report.checkpoint, backend="torch", device="cpu")  # the trained weights, statistics re-estimated
    again.adapt(sources)
    image = again.prepare(sources[0])
    assert np.allclose(trained.log_probs([image])[0], again.log_probs([image])[0], atol=1e-6)
    assert not np.allclose(trained.log_probs([image])[0], before.log_probs([image])[0], atol=1e-4)
    with pytest.raises(ValueError, match="none of the 4 inputs read as anything with confidence >= 1.5"):
        self_train(path, sources, tmp_path / "w2", lexicon=lexicon, steps=1, min_confidence=1.5)
    with pytest.raises(ValueError, match="none of the 1 inputs could be read"):
        self_train(path, [b"not an image"], tmp_path / "w4", steps=1)
    with pytest.raises(ValueError, match="must be positive and leave room for the pseudo-labels"):
        self_train(path, sources, tmp_path / "w3", steps=1, keep_data=[str(keep)], keep_shares=[1.0])


def test_adapt_tool_self_trains_on_its_readings(recognizer, tmp_path):
    from crnn_ocr.data import iter_lmdb_samples
    from crnn_ocr.recognizer import load_recognizer
    from test_tools import run_tool

    path, rec = recognizer
    layers = len(batchnorm_layers(rec.backend.model))
    files = word_files(tmp_path)
    lexicon = tmp_path / "words.txt"
    lexicon.write_text("123\n4567\n89\n5050\n")
    out, work = tmp_path / "self.pt", tmp_path / "work"
    r = run_tool("adapt.py", "--checkpoint", path, "--image", *files, tmp_path / "bad.png", "--out", out,
                 "--self-train", "2", "--lexicon", lexicon, "--batch-size", "2", "--work", work)
    assert r.returncode == 0, r.stderr
    assert "adapt.py: skipped" in r.stderr and "bad.png" in r.stderr
    assert r.stdout.splitlines()[-1].endswith(
        f"wrote {out}: {layers} BatchNorm layers adapted to 4 inputs (1 unreadable, skipped); self-trained 2 steps "
        "on 4 of its readings (0 below --min-confidence or empty, left out), adapted again")
    saved = torch.load(out, weights_only=True)
    assert saved["adapted_on"] == "4 image inputs, self-trained 2 steps on 4 of its readings" and saved["step"] == 2
    labels = [label for _, _, label in iter_lmdb_samples(work / "pseudo_labels")]
    assert len(labels) == 4 and set(labels) <= {"123", "4567", "89", "5050"}
    trained = load_recognizer(work / "run" / "last.pt", backend="torch", device="cpu")
    trained.adapt([str(f) for f in files])
    image = trained.prepare(str(files[0]))
    assert np.allclose(load_recognizer(out, backend="torch", device="cpu").log_probs([image])[0], trained.log_probs([image])[0], atol=1e-6)
    for args, message in ((["--lexicon", lexicon], "--lexicon, --keep-data, --keep-shares and --work go with --self-train"),
                          (["--self-train", "1", "--keep-data", tmp_path], f"--keep-data {tmp_path}: not an LMDB (no data.mdb)"),
                          (["--self-train", "-1"], "--self-train: a number of steps >= 0, got -1"),
                          (["--self-train", "1", "--keep-data", work / "pseudo_labels", "--keep-shares", "0.5", "0.5"],
                           "--keep-shares: 2 shares for 1 --keep-data LMDBs")):
        r = run_tool("adapt.py", "--checkpoint", path, "--image", *files, "--out", tmp_path / "x.pt", *args)
        assert r.returncode == 2 and message in r.stderr.splitlines()[-1], r.stderr
    assert not (tmp_path / "x.pt").exists()
