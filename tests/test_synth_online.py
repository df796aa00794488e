"""Synthetic words rendered in the loader (``synth:CONFIG.json``): seeded per sample and epoch,
independent of the workers, exact on resume, mixed by ratio beside LMDBs; ``--channels-last``."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import ConcatDataset, DataLoader

from conftest import ROOT, WORDS, load_script
from crnn_ocr.alphabet import Alphabet
from crnn_ocr.cli import run_cli
from crnn_ocr.data import BucketBatchSampler, LmdbDataset, collate_batch
from crnn_ocr.data.sources import open_training_source, split_source
from crnn_ocr.engine import TrainConfig, train
from crnn_ocr.frontend import ImageFrontend
from crnn_ocr.model import ModelConfig, build_model
from crnn_ocr.synth.online import SynthConfig, SynthWordDataset
from crnn_ocr.synth.text import WordRenderer, encode_image

ALNUM = Alphabet.preset("alphanumeric")
FRONTEND = ImageFrontend(height=32, channels=1, max_width=400)


def synth_config(tmp_path: Path, name: str = "synth.json", **options) -> Path:
    """A config beside a word list and an empty font folder (Pillow's own font: fast, the same everywhere)."""
    (tmp_path / "words.txt").write_text("\n".join(WORDS) + "\n")
    (tmp_path / "nofonts").mkdir(exist_ok=True)
    path = tmp_path / name
    path.write_text(json.dumps({"count": 24, "words": "words.txt", "fonts": ["nofonts"], **options}))
    return path


def synth_set(tmp_path: Path, seed: int = 0, **options) -> SynthWordDataset:
    ds = open_training_source(f"synth:{synth_config(tmp_path, **options)}", ALNUM, FRONTEND, seed=seed)
    assert isinstance(ds, SynthWordDataset)
    return ds


def test_same_seed_same_samples_and_fresh_words_each_epoch(tmp_path):
    a, b, other = synth_set(tmp_path, seed=1), synth_set(tmp_path, seed=1), synth_set(tmp_path, seed=2)
    assert len(a) == 24 and a.summary().startswith("24 synthetic words per epoch")
    for i in (0, 5, 23):
        x, y = a[i], b[i]
        assert x["label"] == y["label"] and torch.equal(x["image"], y["image"])
    labels = [a[i]["label"] for i in range(12)]
    assert labels != [other[i]["label"] for i in range(12)]
    a.set_epoch(1)
    assert [a[i]["label"] for i in range(12)] != labels  # fresh words every epoch
    b.set_epoch(1)
    assert torch.equal(a[3]["image"], b[3]["image"])


def test_a_sample_is_what_the_lmdb_route_would_train_on(tmp_path):
    """Two routes that must agree: rendered in the loader, or rendered, stored as PNG and read back."""
    ds = synth_set(tmp_path, seed=4, plain_ratio=0.3)
    renderer = WordRenderer(alphabet=ALNUM, words=WORDS, fonts=[str(tmp_path / "nofonts")], height=32, channels=1,
                            plain_ratio=0.3)
    for epoch, i in ((0, 0), (0, 7), (2, 7)):
        ds.set_epoch(epoch)
        img, text = renderer(np.random.default_rng([4, 0, epoch, i]))
        item = ds[i]
        assert item["label"] == text.lower()
        assert torch.equal(item["image"], FRONTEND.training_input(encode_image(img)))
        assert renderer.text(np.random.default_rng([4, 0, epoch, i])) == text  # the text alone: the first draws


def test_estimated_widths_follow_the_rendered_ones(tmp_path):
    ds = synth_set(tmp_path, count=60)
    estimated = ds.epoch_widths(0, np.arange(60))
    rendered = np.array([ds[i]["width"] for i in range(60)])
    assert estimated.dtype == np.int64 and estimated.min() >= 16 and estimated.max() <= 400
    assert np.corrcoef(estimated, rendered)[0, 1] > 0.6


def mixed_loader(tmp_path: Path, word_lmdb: Path, workers: int, epoch: int) -> DataLoader:
    sets = [LmdbDataset(word_lmdb, ALNUM, FRONTEND, augment=True, seed=3), synth_set(tmp_path, seed=3, count=30)]
    sampler = BucketBatchSampler(np.concatenate([ds.widths for ds in sets]), 5, seed=3, drop_last=True,
                                 group_sizes=[len(ds) for ds in sets], ratios=[0.5, 0.5],
                                 width_fns=[getattr(ds, "epoch_widths", None) for ds in sets])
    sampler.set_epoch(epoch)
    for ds in sets:
        ds.set_epoch(epoch)
    return DataLoader(ConcatDataset(sets), batch_sampler=sampler, collate_fn=collate_batch, num_workers=workers)


def test_batches_do_not_depend_on_the_number_of_workers(tmp_path, word_lmdb):
    torch.set_num_threads(1)
    one = list(mixed_loader(tmp_path, word_lmdb, 0, epoch=1))
    two = list(mixed_loader(tmp_path, word_lmdb, 2, epoch=1))
    assert len(one) == len(two) == 10
    for x, y in zip(one, two):
        assert x["labels"] == y["labels"] and torch.equal(x["images"], y["images"])
    labels = {w for b in one for w in b["labels"]}
    assert labels - set(WORDS)  # synthetic random strings beside the LMDB's words


def test_lmdb_batches_are_unchanged_by_width_fns_of_none(word_lmdb):
    widths = LmdbDataset(word_lmdb, ALNUM, FRONTEND).widths
    plain = BucketBatchSampler(widths, 3, seed=5, chunk_batches=2)
    hooked = BucketBatchSampler(widths, 3, seed=5, chunk_batches=2, width_fns=[None])
    assert list(plain) == list(hooked) and hooked.width_fns is None


def test_split_source_and_config_errors(tmp_path):
    assert split_source("runs/ic15") == (None, "runs/ic15")
    assert split_source("synth:a/b.json") == ("synth", "a/b.json")
    assert split_source("C:/data/lmdb") == (None, "C:/data/lmdb")
    bad = tmp_path / "bad.json"
    for text, message in (("{", "not JSON"), ("[1]", "expected a JSON object"), ('{"count": 0}', "'count' must be"),
                          ('{"count": 5, "gray": true}', "unknown option gray"), ('{"count": 5, "style": "x"}', "'style'")):
        bad.write_text(text)
        with pytest.raises(ValueError, match=message):
            SynthConfig.load(bad)
    with pytest.raises(ValueError, match="cannot read the config"):
        SynthConfig.load(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="lacks"):
        open_training_source(f"synth:{synth_config(tmp_path, alphabet='printable')}", ALNUM, FRONTEND)
    with pytest.raises(ValueError, match=r"shaping must be in \[0, 1\]"):
        open_training_source(f"synth:{synth_config(tmp_path, shaping=2)}", ALNUM, FRONTEND)
    assert open_training_source(f"synth:{synth_config(tmp_path, shaping=0.5)}", ALNUM, FRONTEND).renderer.shaping == 0.5


def _cfg(tmp_path: Path, data: list[str], **kw) -> TrainConfig:
    base = dict(data=data, alphabet="alphanumeric", arch="crnn_compact", hidden_size=16, batch_size=4, max_steps=6,
                out_dir=str(tmp_path / "run"), num_workers=0, augment=True, progress=False, log_every=1, val_every=1000,
                save_every=1000, seed=3, schedule="constant", lr=1e-3, data_ratios=[0.5, 0.5])
    base.update(kw)
    return TrainConfig(**base)


def test_resume_of_a_synthetic_and_lmdb_run_is_exact(tmp_path, word_lmdb):
    """An epoch is 36 samples (9 batches): the run crosses into the second epoch's fresh words."""
    torch.set_num_threads(1)
    data = [str(word_lmdb), f"synth:{synth_config(tmp_path, count=16)}"]
    full = train(_cfg(tmp_path, data, out_dir=str(tmp_path / "full"), max_steps=12))
    train(_cfg(tmp_path, data, out_dir=str(tmp_path / "part"), max_steps=5))
    resumed = train(_cfg(tmp_path, data, out_dir=str(tmp_path / "part"), max_steps=12, resume="auto"))
    assert full.step == resumed.step == 12
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_channels_last_gives_the_default_formats_outputs_and_gradients():
    """Outputs agree in float32; gradients, sums with cancellations, are compared in float64."""
    torch.manual_seed(0)
    x, widths = torch.randn(3, 1, 32, 48), torch.tensor([48, 40, 20])
    for dtype, rtol, atol in ((torch.float32, 1e-4, 1e-5), (torch.float64, 1e-9, 1e-11)):
        model = build_model(ModelConfig(num_classes=ALNUM.num_classes, arch="crnn_compact", hidden_size=16)).to(dtype)
        nhwc = copy.deepcopy(model).to(memory_format=torch.channels_last)
        out = model(x.to(dtype), widths)
        out_nhwc = nhwc(x.to(dtype).contiguous(memory_format=torch.channels_last), widths)
        torch.testing.assert_close(out_nhwc, out, rtol=rtol, atol=atol)
        if dtype == torch.float64:
            out.log_softmax(-1)[..., 1].sum().backward()
            out_nhwc.log_softmax(-1)[..., 1].sum().backward()
            for (name, p), q in zip(model.named_parameters(), nhwc.parameters()):
                torch.testing.assert_close(q.grad, p.grad, rtol=rtol, atol=atol, msg=name)


def test_training_with_channels_last_sees_the_same_losses(tmp_path, word_lmdb):
    """lr 0: the same weights every step, so each logged loss compares the two formats' forward passes."""
    torch.set_num_threads(1)
    runs = [train(_cfg(tmp_path, [str(word_lmdb)], data_ratios=None, out_dir=str(tmp_path / f"cl{cl}"), max_steps=3, lr=0.0,
                       channels_last=cl, augment=False)) for cl in (False, True)]
    assert _losses(tmp_path / "clTrue") == pytest.approx(_losses(tmp_path / "clFalse"), rel=1e-5)
    conv = next(p for p in runs[1].model.parameters() if p.dim() == 4 and p.shape[1] > 1)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()


def _losses(run_dir: Path) -> list[float]:
    with open(run_dir / "log.csv", newline="") as f:
        return [float(r["loss"]) for r in csv.DictReader(f) if r["loss"]]


def test_train_cli_errors_are_one_line(tmp_path, word_lmdb, capsys):
    tool = load_script("train_tool", ROOT / "tools" / "train.py")
    good = synth_config(tmp_path)
    (tmp_path / "broken.json").write_text("{count: 3")
    for args, needle in (([f"synth:{tmp_path / 'missing.json'}"], "missing.json: cannot read the config"),
                         ([f"synth:{tmp_path / 'broken.json'}"], "not JSON"),
                         ([str(word_lmdb), "--val", f"synth:{good}"], "validation reads LMDBs")):
        with pytest.raises(SystemExit) as exit_info:
            run_cli(tool.main, ["--data", *args, "--max-steps", "1", "--batch-size", "4", "--workers", "0", "--out", str(tmp_path / "o"),
                                "--no-progress"], prog="train.py")
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.count("\n") == 1 and err.startswith("train.py: error: ") and needle in err, err


def test_blank_ratio_gives_text_free_crops_with_an_empty_label(tmp_path):
    from crnn_ocr.engine import ctc_loss
    from crnn_ocr.synth import text as synth

    ds = synth_set(tmp_path, seed=3, count=200, blank_ratio=0.5)
    items = [ds[i] for i in range(200)]
    blank = [it for it in items if it is not None and it["label"] == ""]
    assert 70 <= len(blank) <= 130 and all(it["ids"] == [] for it in blank)
    assert "50% of them text-free" in ds.summary()
    assert [it["label"] for it in items[:40]] == [it["label"] for it in (ds[i] for i in range(40))]  # seeded
    # a batch with empty labels trains: finite CTC loss, zero-length targets
    batch = collate_batch(items[:16])
    assert 0 in batch["target_lengths"].tolist()
    model = build_model(ModelConfig(num_classes=ALNUM.num_classes, arch="crnn_compact", hidden_size=16))
    logits = model(batch["images"])
    lengths = torch.full((logits.shape[0],), logits.shape[1], dtype=torch.long)
    assert torch.isfinite(ctc_loss(logits, batch["targets"], lengths, batch["target_lengths"]))
    # the same draws as the word, nothing inked: same size, and far less contrast than the word itself
    font = str(Path(__import__("matplotlib").get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")
    for seed in range(8):
        word = synth.render_word("Hotel", font, np.random.default_rng(seed), channels=1)
        empty = synth.render_word("Hotel", font, np.random.default_rng(seed), channels=1, blank=True)
        assert word.shape == empty.shape and float(empty.std()) < float(word.std()) - 10, seed
    with pytest.raises(ValueError, match="blank_ratio"):
        synth_set(tmp_path, blank_ratio=1.5)
    with pytest.raises(ValueError, match="blank_ratio"):
        WordRenderer(words=["ab"], style="dot-matrix", blank_ratio=0.1)
