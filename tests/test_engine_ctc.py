"""The trainer's CTC pieces (crnn_ocr.engine.ctc) and its log (crnn_ocr.engine.log), on hand-built inputs."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from crnn_ocr.alphabet import Alphabet
from crnn_ocr.decoding import greedy_decode
from crnn_ocr.decoding.ctc import collapse_path
from crnn_ocr.engine.ctc import ctc_loss, greedy_ids
from crnn_ocr.engine.log import COLUMNS, CsvLog

ABC = Alphabet("bgu")  # blank 0, b 1, g 2, u 3


def _one_hot(paths: list[list[int]], classes: int = 4) -> torch.Tensor:
    """Logits (N, T, C) whose best path is each row of ``paths``."""
    logits = torch.zeros(len(paths), len(paths[0]), classes)
    for n, path in enumerate(paths):
        for t, c in enumerate(path):
            logits[n, t, c] = 5.0
    return logits


def test_greedy_ids_collapse_repeats_drop_blanks_and_stop_at_each_length():
    logits = _one_hot([[1, 1, 0, 3, 3, 0, 2], [1, 0, 1, 1, 0, 0, 0], [3, 3, 3, 2, 2, 2, 2]])
    ids = greedy_ids(logits, torch.tensor([7, 7, 2]))
    assert ids == [[1, 3, 2], [1, 1], [3]]  # "bug", "bb" (a blank between), the first 2 frames only
    assert [ABC.decode(i) for i in ids] == ["bug", "bb", "u"]
    assert greedy_ids(logits[:1], torch.tensor([0])) == [[]]


def test_collapse_path_gives_symbols_and_their_frames():
    assert collapse_path(np.array([1, 1, 0, 3, 3, 0, 2])) == ((1, 3, 2), ((0, 2), (3, 5), (6, 7)))
    assert collapse_path(np.array([0, 0])) == ((), ())
    assert collapse_path(np.array([], dtype=np.int64)) == ((), ())


def test_greedy_ids_agree_with_the_decoder():
    torch.manual_seed(0)
    logits = torch.randn(16, 12, 4) * 3
    lengths = torch.randint(1, 13, (16,))
    for ids, row, n in zip(greedy_ids(logits, lengths), logits, lengths.tolist()):
        assert ABC.decode(ids) == greedy_decode(row[:n].numpy(), ABC, logits=True).text


def test_ctc_loss_is_torchs_mean_per_target_symbol():
    torch.manual_seed(0)
    logits = torch.randn(3, 10, 4)
    targets = torch.tensor([1, 3, 2, 1, 2, 2, 3])
    target_lengths, input_lengths = torch.tensor([3, 1, 3]), torch.tensor([10, 6, 8])
    per_sample = [
        torch.nn.functional.ctc_loss(logits[i, : input_lengths[i]].log_softmax(-1), targets[s : s + n],
                                     input_lengths[i : i + 1], target_lengths[i : i + 1], reduction="sum")
        for i, (s, n) in enumerate([(0, 3), (3, 1), (4, 3)])
    ]
    expected = sum(float(loss) / n for loss, n in zip(per_sample, [3, 1, 3])) / 3
    assert float(ctc_loss(logits, targets, input_lengths, target_lengths)) == pytest.approx(expected, rel=1e-6)


def test_csv_log_starts_empty_and_a_resumed_run_drops_the_rows_after_its_checkpoint(tmp_path):
    path = tmp_path / "log.csv"
    log = CsvLog(path, None)
    for step in (1, 2, 3, 4):
        log.write(step=step, epoch=0, loss=f"{1 / step:.5f}")
    log.write(step=4, epoch=0, val_acc="0.5000")
    CsvLog(path, resume_step=2)  # killed after step 4, resumed from the step-2 checkpoint
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["step"], r["loss"]) for r in rows] == [("1", "1.00000"), ("2", "0.50000")]
    assert list(rows[0]) == COLUMNS
    CsvLog(path, None)  # a new run
    assert path.read_text().splitlines() == [",".join(COLUMNS)]
