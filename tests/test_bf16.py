"""bfloat16 where the CPU has no hardware for it: the trainer and infer.py say so in one line."""

from __future__ import annotations

import cv2
import pytest
import torch

import crnn_ocr.torch_backend as tb
from conftest import WORDS, make_word_lmdb, render_word
from crnn_ocr.engine import TrainConfig, train
from crnn_ocr.infer import InferConfig, infer

WARNING = f"warning: --bf16: {tb.SLOW_BF16}; leave it off on this machine"


def test_native_bf16_follows_the_cpu_and_never_asks_cuda_on_the_cpu(monkeypatch):
    for answer in (True, False):
        monkeypatch.setattr(tb, "_cpu_bf16_supported", lambda answer=answer: answer)
        assert tb.native_bf16("cpu") is answer and tb.native_bf16(torch.device("cpu")) is answer
    assert tb.native_bf16("meta") is True  # nothing to tell


@pytest.mark.parametrize("native", [True, False])
def test_trainer_warns_once_when_bf16_is_emulated(tmp_path, monkeypatch, capsys, native):
    torch.set_num_threads(1)
    monkeypatch.setattr(tb, "_cpu_bf16_supported", lambda: native)
    data = make_word_lmdb(tmp_path / "words", WORDS[:4])
    cfg = TrainConfig(data=[str(data)], alphabet="alphanumeric", arch="crnn_compact", batch_size=4, max_steps=1,
                      out_dir=str(tmp_path / "run"), num_workers=0, augment=False, progress=False, bf16=True, device="cpu")
    train(cfg)
    lines = capsys.readouterr().out.splitlines()
    assert lines.count(WARNING) == (0 if native else 1)


@pytest.mark.parametrize("native", [True, False])
def test_infer_warns_when_bf16_is_emulated(tmp_path, monkeypatch, capsys, native):
    monkeypatch.setattr(tb, "_cpu_bf16_supported", lambda: native)
    img = tmp_path / "w.png"
    cv2.imwrite(str(img), render_word("river", height=36))
    assert infer(InferConfig(sources=[str(img)], precision="bf16", device="cpu", progress="off", threads=1)) == 0
    out = capsys.readouterr()
    assert out.out.split("\t")[1] == "river"
    expected = [] if native else [f"infer.py: warning: --precision bf16: {tb.SLOW_BF16}"]
    assert out.err.splitlines() == expected
