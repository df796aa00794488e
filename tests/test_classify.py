"""The classification wing on hand-made inputs: ConvRNN1d against its RNN run window by window,
metrics against values worked out by hand and brute force, the class list, pooling, batch
invariance of every family, mixup, balanced sampling, and the core hooks a classifier run uses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from crnn_ocr.classify.classes import ClassList
from crnn_ocr.classify.config import ClassifierConfig
from crnn_ocr.classify.convrnn import ConvRNN1d, FrameConv1d
from crnn_ocr.classify.metrics import (
    accuracy,
    average_precision,
    choose_thresholds,
    confusion_matrix,
    d_prime,
    roc_auc,
    tagging_metrics,
)
from crnn_ocr.classify.models import TemporalPooling, build_classifier, min_width
from crnn_ocr.classify.reading import ClassifyResult, result_json, result_line
from crnn_ocr.classify.task import ClassifierTask, mixup


# ------------------------------------------------------------------------------------ ConvRNN1d
@pytest.mark.parametrize("rnn,bidirectional", [("gru", True), ("gru", False), ("lstm", True), ("lstm", False)])
def test_convrnn1d_equals_its_rnn_run_on_each_window_by_hand(rnn, bidirectional):
    torch.manual_seed(0)
    layer = ConvRNN1d(6, 4, kernel_size=3, stride=2, rnn=rnn, bidirectional=bidirectional)
    x = torch.randn(2, 11, 6)  # (N, T, D)
    out = layer(x)
    dirs = 2 if bidirectional else 1
    conv = nn.Conv1d(6, 4 * dirs, 3, 2)  # shaped like the convolution it generalizes
    assert out.shape == (2, 5, 4 * dirs) == conv(x.transpose(1, 2)).transpose(1, 2).shape
    for n in range(2):
        for t in range(5):
            window = x[n, 2 * t : 2 * t + 3].unsqueeze(0)  # (1, k, D): frames 2t .. 2t+2
            seq, _ = layer.rnn(window)  # (1, k, dirs * C)
            expected = seq[0, -1, :4] if not bidirectional else torch.cat([seq[0, -1, :4], seq[0, 0, 4:]])
            assert torch.allclose(out[n, t], expected, atol=1e-6), (n, t)


def test_convrnn1d_gru_by_the_equations():
    """One window through GRU equations written out (PyTorch's gate order r, z, n)."""
    torch.manual_seed(1)
    layer = ConvRNN1d(3, 2, kernel_size=4, stride=4)
    x = torch.randn(1, 8, 3)
    w_ih, w_hh, b_ih, b_hh = (getattr(layer.rnn, f"{n}_l0") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    for t, start in enumerate((0, 4)):
        h = torch.zeros(2)
        for frame in x[0, start : start + 4]:
            gi, gh = w_ih @ frame + b_ih, w_hh @ h + b_hh
            r, z = torch.sigmoid(gi[:2] + gh[:2]), torch.sigmoid(gi[2:4] + gh[2:4])
            n = torch.tanh(gi[4:] + r * gh[4:])
            h = (1 - z) * n + z * h
        assert torch.allclose(layer(x)[0, t], h, atol=1e-6)


def test_convrnn1d_output_length_and_errors():
    layer = ConvRNN1d(5, 3, kernel_size=4, stride=3)
    assert [layer.output_length(t) for t in (4, 6, 7, 10)] == [1, 1, 2, 3]
    assert layer(torch.zeros(1, 10, 5)).shape == (1, 3, 3)
    assert FrameConv1d(5, 6, 4, 3)(torch.zeros(1, 10, 5)).shape == (1, 3, 6)
    with pytest.raises(ValueError, match="fewer than the kernel size 4"):
        layer(torch.zeros(1, 3, 5))
    with pytest.raises(ValueError, match="rnn must be one of"):
        ConvRNN1d(5, 3, 4, rnn="transformer")


# ------------------------------------------------------------------------------------ metrics
def test_metrics_on_hand_made_scores():
    assert average_precision([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision([0.5, 0.5, 0.2], [1, 0, 1]) == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)  # a tie enters together
    assert math.isnan(average_precision([0.3, 0.1], [0, 0]))
    assert roc_auc([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]) == pytest.approx(0.75)  # 3 of 4 positive-negative pairs in order
    assert roc_auc([0.5, 0.5, 0.2], [1, 0, 1]) == pytest.approx(0.25)  # a tie counts half
    assert d_prime(0.75) == pytest.approx(math.sqrt(2) * 0.6744897501960817)
    assert d_prime(0.5) == 0 and d_prime(1.0) == math.inf and math.isnan(d_prime(math.nan))
    assert accuracy(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2])) == 0.75
    assert confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2], 3).tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    scores = np.array([[0.9, 0.8], [0.6, 0.3], [0.4, 0.2], [0.1, 0.7]])
    truth = np.array([[1, 1], [1, 0], [0, 1], [0, 0]])
    m = tagging_metrics(scores, truth)
    ap1 = (1 + 2 / 4) / 2  # class 1: positives ranked 1st and 4th
    assert m.average_precision == pytest.approx((1.0, ap1)) and m.mean_average_precision == pytest.approx((1 + ap1) / 2)
    assert m.auc == pytest.approx((1.0, 0.5)) and m.mean_auc == pytest.approx(0.75)
    # class 1: tagging 0.8 alone and tagging all four both give F1 2/3: the higher cut, between 0.8 and 0.7
    assert choose_thresholds(scores, truth) == pytest.approx([0.5, 0.75])
    assert choose_thresholds(scores[:, :1], np.zeros((4, 1))) == [0.5]  # no positives: the default


def test_average_precision_and_auc_against_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(2, 15))
        truth = rng.integers(0, 2, n)
        if truth.sum() in (0, n):
            continue
        scores = rng.random(n)  # no ties: precision at each positive's rank
        ranks = np.argsort(np.argsort(-scores)) + 1
        pos_ranks = np.sort(ranks[truth == 1])
        assert average_precision(scores, truth) == pytest.approx(np.mean([(k + 1) / r for k, r in enumerate(pos_ranks)]))
        tied = np.round(scores, 1)  # ties: every positive-negative pair, ties half
        pairs = [(p > q) + 0.5 * (p == q) for p in tied[truth == 1] for q in tied[truth == 0]]
        assert roc_auc(tied, truth) == pytest.approx(np.mean(pairs))


# ------------------------------------------------------------------------------------ labels
def test_class_list_encodes_labels_and_names_what_is_wrong(tmp_path):
    classes = ClassList(["zero", "one", "two"])
    assert classes.encode("two") == [2] and classes.decode([2]) == "two" and classes.num_classes == 3
    with pytest.raises(ValueError, match="label 'three' names no class \\(known: zero, one, two\\)"):
        classes.encode("three")
    assert classes.try_encode("") is None
    tags = ClassList(["zero", "one", "two"], multilabel=True)
    assert tags.encode("two,zero,two") == [0, 2] and tags.decode([0, 2]) == "zero,two"
    for label, message in [("", "empty tag list"), ("one,,two", "empty tag in"), ("one,ten", "tag 'ten' of 'one,ten' names no class")]:
        with pytest.raises(ValueError, match=message):
            tags.encode(label)
    (tmp_path / "c.txt").write_text("dog\n\ncat\ndog\n")
    with pytest.raises(ValueError, match="c.txt:4: class 'dog' is listed twice"):
        ClassList.from_file(tmp_path / "c.txt")
    with pytest.raises(ValueError, match="tag separator"):
        ClassList(["a,b"], multilabel=True)
    assert ClassList.from_dict(tags.to_dict()) == tags != classes


def test_result_lines_and_json():
    r = ClassifyResult(label="one", probability=0.7, labels=("one", "two"), probabilities={"zero": 0.1, "one": 0.7, "two": 0.6})
    assert result_line("a.wav", r) == "a.wav\tone\t0.7000"
    assert result_line("a.wav", r, multilabel=True) == "a.wav\tone,two\t0.7000,0.6000"
    assert result_line("a.wav", r, 2) == "a.wav\tone\t0.7000\ttwo\t0.6000"
    assert result_json("a.wav", r, multilabel=True) == ('{"path": "a.wav", "label": "one", "probability": 0.7, "labels": ["one", "two"], '
                                                        '"probabilities": {"zero": 0.1, "one": 0.7, "two": 0.6}}')
    assert '"top": [["one", 0.7]]' in result_json("a.wav", r, 1) and '"labels"' not in result_json("a.wav", r)


# ------------------------------------------------------------------------------------ models
def test_temporal_pooling_uses_each_items_own_frames():
    x = torch.tensor([[[1.0], [3.0], [100.0]]])  # (1, T=3, D=1); the third frame is padding
    lengths = torch.tensor([2])
    assert [float(TemporalPooling(k, 1)(x, lengths)) for k in ("mean", "max", "meanmax")] == [2.0, 3.0, 5.0]
    attention = TemporalPooling("attention", 1)
    nn.init.zeros_(attention.score.weight), nn.init.zeros_(attention.score.bias)  # equal scores: the mean
    with torch.no_grad():
        assert float(attention(x, lengths)) == pytest.approx(2.0)


ARCHS = ["crnn_compact", "convrnn", "convrnn_lstm", "conv1d", "cnn6", "cnn10", "cnn14"]


@pytest.mark.parametrize("arch", ARCHS)
def test_every_family_reads_a_clip_in_a_batch_as_alone(arch):
    torch.manual_seed(0)
    model = build_classifier(ClassifierConfig(num_classes=4, arch=arch, height=32, hidden_size=16)).eval()
    short, long = torch.randn(1, 1, 32, 45), torch.randn(1, 1, 32, 70)
    padded = torch.cat([short, short[..., -1:].expand(-1, -1, -1, 25)], dim=3)  # repeat the last frame, as to_batch does
    with torch.inference_mode():
        both = model(torch.cat([padded, long]), torch.tensor([45, 70]))  # (2, K)
        alone = torch.cat([model(short, torch.tensor([45])), model(long, torch.tensor([70]))])
    assert both.shape == (2, 4) and torch.allclose(both, alone, atol=1e-5)


def test_min_width_is_the_narrowest_input_with_an_output_frame():
    def width(**kw):
        return min_width(build_classifier(ClassifierConfig(num_classes=2, height=64, **kw)))

    assert width(arch="cnn10") == 16 and width(arch="cnn14") == 32  # 4 or 5 2x2 poolings
    assert width(arch="convrnn") == 13  # two layers of windows of 5 every 2: 13 -> 5 -> 1
    assert width(arch="conv1d", kernel_size=9, stride=3, layers=1) == 9
    assert width(arch="crnn_compact") == 4
    with pytest.raises(ValueError, match="too small for arch 'cnn14'"):
        build_classifier(ClassifierConfig(num_classes=2, arch="cnn14", height=16))
    with pytest.raises(ValueError, match="unknown pooling"):
        ClassifierConfig(num_classes=2, pooling="median")


def test_a_few_steps_drive_the_loss_down():
    torch.manual_seed(0)
    model = build_classifier(ClassifierConfig(num_classes=2, arch="convrnn", height=8, hidden_size=8, dropout=0.0))
    x = torch.randn(8, 1, 8, 30)
    y = torch.tensor([0, 1] * 4)
    x[y == 1] += 1.0
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = nn.functional.cross_entropy(model(x, torch.full((8,), 30)), y)
        opt.zero_grad(), loss.backward(), opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.2 * losses[0]


# ------------------------------------------------------------------------------------ training pieces
def test_mixup_mixes_inputs_and_targets_with_one_lambda():
    images, widths = torch.randn(4, 1, 2, 5), torch.tensor([5, 3, 4, 5])
    targets = torch.tensor([0, 1, 2, 1])
    torch.manual_seed(3)
    mixed, w, soft, dominant = mixup(images, widths, targets, 3, 0.4, multilabel=False)
    torch.manual_seed(3)
    lam = float(torch.distributions.Beta(0.4, 0.4).sample())
    perm = torch.randperm(4)
    assert torch.allclose(mixed, lam * images + (1 - lam) * images[perm])
    assert torch.equal(w, torch.maximum(widths, widths[perm])) and torch.allclose(soft.sum(dim=1), torch.ones(4))
    assert torch.equal(dominant, targets if lam >= 0.5 else targets[perm])


def test_balanced_weights_give_every_class_the_same_share(tmp_path):
    from conftest import make_word_lmdb
    from crnn_ocr.data import BucketBatchSampler, LmdbDataset

    words = ["cat"] * 6 + ["dog"] * 3 + ["sun"]  # skewed 6:3:1
    ds = LmdbDataset(make_word_lmdb(tmp_path / "lmdb", words), ClassList(["cat", "dog", "sun"]))

    class Cfg:
        balanced, data_ratios = True, None

    weights = np.array(ClassifierTask(multilabel=False).sample_weights([ds], Cfg()))
    labels = np.array(ds.labels())
    assert [weights[labels == w].sum() for w in ("cat", "dog", "sun")] == pytest.approx([1 / 3] * 3)
    sampler = BucketBatchSampler(ds.widths, 10, num_samples=30_000, weights=weights)
    drawn = labels[np.concatenate([b for b in sampler])]
    assert [np.mean(drawn == w) for w in ("cat", "dog", "sun")] == pytest.approx([1 / 3] * 3, abs=0.02)


def test_a_bad_label_stops_a_classifier_dataset_and_a_short_input_is_counted(tmp_path):
    from conftest import make_word_lmdb
    from crnn_ocr.data import LmdbDataset, write_lmdb

    path = make_word_lmdb(tmp_path / "lmdb", ["cat", "dog", "owl"])
    with pytest.raises(ValueError, match=r"lmdb: sample 3: label 'owl' names no class \(known: cat, dog\)"):
        LmdbDataset(path, ClassList(["cat", "dog"]), bad_labels="raise")
    with pytest.raises(ValueError, match=r"no usable samples \(skipped 3 of 3: 3 shorter than the model's minimum\)"):
        LmdbDataset(path, ClassList(["cat", "dog", "owl"]), min_width=10_000)
    empty = tmp_path / "tags"
    write_lmdb(empty, [(b"x", "")])
    with pytest.raises(ValueError, match="sample 1: empty tag list"):
        LmdbDataset(empty, ClassList(["cat"], multilabel=True), bad_labels="raise")


def test_a_classifier_run_starts_from_a_ctc_models_trunk(tmp_path):
    from crnn_ocr.alphabet import Alphabet
    from crnn_ocr.checkpoint import save_checkpoint
    from crnn_ocr.engine import TrainConfig, resolve_start
    from crnn_ocr.engine.start import start_weights
    from crnn_ocr.model import ModelConfig, build_model

    alphabet = Alphabet.preset("digits")
    ctc = ModelConfig(num_classes=alphabet.num_classes, arch="crnn_compact", height=32)
    save_checkpoint(tmp_path / "ctc.pt", {"kind": "speech", "model_config": ctc.to_dict(), "alphabet": alphabet.to_dict(),
                                          "frontend": {"kind": "audio", "sample_rate": 8000, "n_mels": 32},
                                          "model": build_model(ctc).state_dict()})
    (tmp_path / "classes.txt").write_text("yes\nno\n")
    cfg = TrainConfig(data=["x"], kind="classify", init_from=str(tmp_path / "ctc.pt"), alphabet=str(tmp_path / "classes.txt"), max_steps=1)
    spec = resolve_start(cfg)
    assert (spec.model_config.arch, spec.model_config.height, spec.frontend.sample_rate) == ("crnn_compact", 32, 8000)
    line = start_weights(build_model(spec.model_config), spec, "ctc.pt")
    assert line == ("init from ctc.pt: 60 of 66 tensors kept; output layer 11 -> 2 classes; fresh: rnn.1.linear.weight, "
                    "rnn.1.linear.bias, pool.score.weight, pool.score.bias, head.1.weight, head.1.bias")  # trunk and BiLSTMs kept
    with pytest.raises(ValueError, match="--kind classify: give --alphabet, the class list file"):
        resolve_start(TrainConfig(data=["x"], kind="classify", max_steps=1))


def test_the_task_table_finds_each_kinds_task_without_importing_the_wing_statically():
    import subprocess
    import sys

    from crnn_ocr.tasks import WrongTask, check_ctc_model, get_task, kind_info, task_for_kind, task_of_kind

    assert [task_of_kind(k) for k in ("text", "score", "speech", "classify", "tag", None, "future")] == \
        ["ctc", "ctc", "ctc", "classify", "tag", "ctc", "ctc"]
    assert kind_info("tag").frontend == "audio" and kind_info("text").frontend == "image"
    assert task_for_kind("tag").best_name == "val mAP" and get_task("ctc").best_name == "val word accuracy"
    check_ctc_model("speech", "m.pt")
    with pytest.raises(WrongTask, match="m.pt: is a tag model") as e:
        check_ctc_model("tag", "m.pt")
    assert (e.value.kind, e.value.task) == ("tag", "tag")
    with pytest.raises(ValueError, match="unknown kind 'poem'"):
        kind_info("poem")
    code = "import sys, crnn_ocr.tasks; print(sorted(m for m in ('torch', 'numpy', 'crnn_ocr.classify') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "[]", r.stderr  # the table is plain data: readers without torch use it


def test_sampler_weights_are_one_per_sample_and_exclude_ratios():
    from crnn_ocr.data import BucketBatchSampler

    with pytest.raises(ValueError, match="weights: one non-negative number per sample"):
        BucketBatchSampler([10, 20], 1, weights=[1.0])
    with pytest.raises(ValueError, match="and no ratios"):
        BucketBatchSampler([10, 20], 1, weights=[1.0, 1.0], group_sizes=[1, 1], ratios=[0.5, 0.5])
    drawn = [i for batch in BucketBatchSampler([10, 20, 30], 1, num_samples=50, weights=[0, 1, 0]) for i in batch]
    assert drawn == [1] * 50
