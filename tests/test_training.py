"""The trainer: it learns, resumes on the same curve, adapts to a new alphabet, runs under DDP."""

from __future__ import annotations

import csv
import os
import socket
from pathlib import Path

import pytest
import torch

from conftest import WORDS, make_word_lmdb
from crnn_ocr.alphabet import Alphabet
from crnn_ocr.checkpoint import load_checkpoint
from crnn_ocr.engine import TrainConfig, resize_output_layer, train


def _cfg(tmp_path: Path, data: Path, **kw) -> TrainConfig:
    base = dict(data=[str(data)], alphabet="alphanumeric", arch="crnn_compact", batch_size=10, max_steps=6,
                out_dir=str(tmp_path / "run"), num_workers=0, augment=False, progress=False, log_every=1,
                val_every=1000, save_every=1000, seed=3, schedule="constant", lr=1e-3)
    base.update(kw)
    return TrainConfig(**base)


def _losses(run_dir: Path) -> list[float]:
    with open(run_dir / "log.csv", newline="") as f:
        return [float(r["loss"]) for r in csv.DictReader(f) if r["loss"]]


@pytest.mark.slow
def test_compact_model_overfits_twenty_words(tmp_path, word_lmdb):
    torch.set_num_threads(1)
    cfg = _cfg(tmp_path, word_lmdb, val=[str(word_lmdb)], batch_size=20, max_steps=400, lr=5e-3,
               schedule="onecycle", val_every=100, log_every=50)
    result = train(cfg)
    assert result.best_metric == 1.0  # every one of the 20 words read back exactly
    state = load_checkpoint(result.best_checkpoint)
    assert state["alphabet"] == Alphabet.preset("alphanumeric").to_dict()
    assert (Path(cfg.out_dir) / "curves.png").stat().st_size > 0


def test_resume_continues_the_same_loss_curve(tmp_path, word_lmdb):
    torch.set_num_threads(1)
    full = train(_cfg(tmp_path, word_lmdb, out_dir=str(tmp_path / "full"), max_steps=8, batch_size=4))
    part = _cfg(tmp_path, word_lmdb, out_dir=str(tmp_path / "part"), max_steps=3, batch_size=4)
    train(part)
    resumed = train(_cfg(tmp_path, word_lmdb, out_dir=str(tmp_path / "part"), max_steps=8, batch_size=4, resume="auto"))
    assert resumed.step == full.step == 8
    a, b = _losses(tmp_path / "full"), _losses(tmp_path / "part")
    assert len(a) == len(b) == 8
    assert b == pytest.approx(a, rel=1e-5, abs=1e-6)
    for pa, pb in zip(full.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)


def test_keep_every_keeps_checkpoints_a_run_resumes_from_exactly(tmp_path, word_lmdb):
    torch.set_num_threads(1)
    full = train(_cfg(tmp_path, word_lmdb, out_dir=str(tmp_path / "full"), max_steps=8, batch_size=4, keep_every=3))
    assert sorted(p.name for p in (tmp_path / "full").glob("step-*.pt")) == ["step-0000003.pt", "step-0000006.pt"]
    assert [load_checkpoint(tmp_path / "full" / f"step-000000{k}.pt")["step"] for k in (3, 6)] == [3, 6]
    resumed = train(_cfg(tmp_path, word_lmdb, out_dir=str(tmp_path / "again"), max_steps=8, batch_size=4,
                         resume=str(tmp_path / "full" / "step-0000003.pt")))
    assert resumed.step == 8 and not list((tmp_path / "again").glob("step-*.pt"))
    for pa, pb in zip(full.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="--keep-every must be positive, got 0"):
        train(_cfg(tmp_path, word_lmdb, keep_every=0))


def test_the_logged_loss_is_the_mean_of_its_interval(tmp_path, word_lmdb):
    torch.set_num_threads(1)
    every = train(_cfg(tmp_path, word_lmdb, out_dir=str(tmp_path / "every"), max_steps=5, batch_size=4))
    third = train(_cfg(tmp_path, word_lmdb, out_dir=str(tmp_path / "third"), max_steps=5, batch_size=4, log_every=3))
    a, b = _losses(tmp_path / "every"), _losses(tmp_path / "third")  # rows at steps 1-5, and at steps 3 and 5
    assert b == pytest.approx([sum(a[:3]) / 3, sum(a[3:]) / 2], rel=1e-4)  # one run's batches, logged twice as often
    assert every.final_loss == pytest.approx(a[-1], rel=1e-4) and third.final_loss == pytest.approx(b[-1], rel=1e-4)


def test_init_from_resizes_output_layer(tmp_path, word_lmdb):
    first = train(_cfg(tmp_path, word_lmdb, out_dir=str(tmp_path / "a"), max_steps=2))
    old = Alphabet.preset("alphanumeric")
    new = Alphabet("abcdefghijklmnopqrstuvwxyz!")  # digits dropped, "!" added
    lmdb2 = make_word_lmdb(tmp_path / "bang", [w + "!" for w in WORDS])
    second = train(_cfg(tmp_path, lmdb2, out_dir=str(tmp_path / "b"), max_steps=1, lr=0.0,
                        init_from=first.last_checkpoint, alphabet=str(_write(tmp_path / "abc.txt", new))))
    w_old = load_checkpoint(first.last_checkpoint)["model"]
    w_new = second.model.state_dict()
    changed = [k for k in w_new if w_new[k].shape != w_old[k].shape]
    assert changed and all(w_new[k].shape[0] == new.num_classes for k in changed)
    for k in changed:
        assert torch.equal(w_new[k][0], w_old[k][0])  # blank row kept
        assert torch.equal(w_new[k][new.id_of("q")], w_old[k][old.id_of("q")])  # shared symbol kept


def test_init_from_keeps_the_checkpoints_alphabet_unless_one_is_given(tmp_path, word_lmdb):
    torch.set_num_threads(1)
    cased = train(_cfg(tmp_path, word_lmdb, out_dir=str(tmp_path / "cased"), max_steps=1, alphabet="alphanumeric_cased"))
    child = train(_cfg(tmp_path, word_lmdb, out_dir=str(tmp_path / "child"), max_steps=1, alphabet=None,
                       init_from=cased.last_checkpoint))
    assert Alphabet.from_dict(load_checkpoint(child.last_checkpoint)["alphabet"]) == Alphabet.preset("alphanumeric_cased")
    fresh = train(_cfg(tmp_path, word_lmdb, out_dir=str(tmp_path / "fresh"), max_steps=1, alphabet=None))
    assert Alphabet.from_dict(load_checkpoint(fresh.last_checkpoint)["alphabet"]) == Alphabet.preset("alphanumeric")


def test_width_scale_is_saved_and_inherited_by_init_from(tmp_path, word_lmdb):
    torch.set_num_threads(1)
    wide = train(_cfg(tmp_path, word_lmdb, out_dir=str(tmp_path / "wide"), max_steps=1, width_scale=1.5))
    assert load_checkpoint(wide.last_checkpoint)["frontend"]["width_scale"] == 1.5
    child = train(_cfg(tmp_path, word_lmdb, out_dir=str(tmp_path / "child"), max_steps=1, init_from=wide.last_checkpoint))
    assert load_checkpoint(child.last_checkpoint)["frontend"]["width_scale"] == 1.5  # fine-tuning keeps the input geometry
    reset = train(_cfg(tmp_path, word_lmdb, out_dir=str(tmp_path / "reset"), max_steps=1, init_from=wide.last_checkpoint,
                       width_scale=1.0))
    assert load_checkpoint(reset.last_checkpoint)["frontend"]["width_scale"] == 1.0
    resumed = train(_cfg(tmp_path, word_lmdb, out_dir=str(tmp_path / "wide"), max_steps=2, resume="auto", width_scale=1.0))
    assert load_checkpoint(resumed.last_checkpoint)["frontend"]["width_scale"] == 1.5  # a resumed run keeps its own
    other_kind = train(_cfg(tmp_path, word_lmdb, out_dir=str(tmp_path / "score"), max_steps=1, kind="score",
                            init_from=wide.last_checkpoint))
    assert load_checkpoint(other_kind.last_checkpoint)["frontend"]["width_scale"] == 1.0  # text -> score: not inherited


def _write(path: Path, alphabet: Alphabet) -> Path:
    alphabet.save(path)
    return path


def test_resize_output_layer_seeds_both_cases_from_a_case_folded_alphabet():
    old, new = Alphabet.preset("alphanumeric"), Alphabet.preset("alphanumeric_cased")
    torch.manual_seed(0)
    src = torch.nn.Linear(4, old.num_classes)
    dst = torch.nn.Linear(4, new.num_classes)
    out = resize_output_layer(src.state_dict(), old, new, dst)
    for sym, from_sym in (("a", "a"), ("A", "a"), ("Z", "z"), ("7", "7")):
        assert torch.equal(out["weight"][new.id_of(sym)], src.weight[old.id_of(from_sym)])
        assert torch.equal(out["bias"][new.id_of(sym)], src.bias[old.id_of(from_sym)])
    assert torch.equal(out["weight"][0], src.weight[0])


def test_resize_output_layer_rejects_other_shapes():
    a = Alphabet("ab")
    model = torch.nn.Linear(4, 3)
    with pytest.raises(ValueError, match="cannot adapt layer weight"):
        resize_output_layer({"weight": torch.zeros(5, 5), "bias": torch.zeros(3)}, a, a, model)


def test_init_from_a_shorter_model_keeps_every_layer_that_fits():
    from crnn_ocr.model import ModelConfig, build_model

    old, new = Alphabet.preset("alphanumeric"), Alphabet(["clef-G2", "note-C4_quarter", "barline"])
    torch.manual_seed(0)
    src = build_model(ModelConfig(num_classes=old.num_classes, arch="crnn_compact", height=32, hidden_size=16))
    dst = build_model(ModelConfig(num_classes=new.num_classes, arch="crnn_compact", height=64, hidden_size=16))
    fresh: list[str] = []
    out = resize_output_layer(src.state_dict(), old, new, dst, fresh=fresh)
    assert fresh == ["project.weight", "project.bias"]  # 64 px leaves 3 feature rows to project; 32 px leaves 1
    dst.load_state_dict(out)
    for key, value in src.state_dict().items():
        if key in dst.state_dict() and value.shape == dst.state_dict()[key].shape:
            assert torch.equal(dst.state_dict()[key], value), key
    with pytest.raises(RuntimeError, match="project.weight"):  # strict without ``fresh``
        dst.load_state_dict(resize_output_layer(src.state_dict(), old, new, dst))


def test_everything_filtered_is_an_error(tmp_path):
    lmdb = make_word_lmdb(tmp_path / "caps", ["ABC", "DEF"])
    with pytest.raises(ValueError):
        train(_cfg(tmp_path, lmdb, alphabet="digits"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, cfg: TrainConfig, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    result = train(cfg)
    # parameters only: BatchNorm running statistics are per rank on CPU (no SyncBatchNorm kernel)
    torch.save({k: v.detach().clone() for k, v in result.model.named_parameters()}, f"{out}/rank{rank}.pt")
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_ddp_two_ranks_keep_identical_parameters(tmp_path, word_lmdb):
    cfg = _cfg(tmp_path, word_lmdb, max_steps=2, batch_size=4, device="cpu", ema=0.9)  # each rank's average too
    torch.multiprocessing.spawn(_ddp_worker, args=(2, _free_port(), cfg, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    init = load_checkpoint(tmp_path / "run" / "last.pt")
    assert init["step"] == 2 and init["ema_updates"] == 2
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k
        assert torch.equal(r0[k], init["model"][k]), k  # the result's model and last.pt's: the average
    assert any(not torch.equal(r0[k], torch.zeros_like(r0[k])) for k in r0)


def test_ema_is_the_warmed_up_average_of_the_stepped_weights_and_resumes_exactly(tmp_path, word_lmdb, monkeypatch):
    """--ema: checkpoints' ``model`` is the moving average, ``train_model`` the stepped weights; the
    first step copies them, the n-th moves 1 - min(decay, (1+n)/(10+n)) of the way; a resumed run's
    average equals an uninterrupted one's; validation reads the average."""
    torch.set_num_threads(1)
    decay = 0.5
    one = load_checkpoint(train(_cfg(tmp_path, word_lmdb, out_dir=str(tmp_path / "one"), max_steps=1, batch_size=4, ema=decay)).last_checkpoint)
    two = load_checkpoint(train(_cfg(tmp_path, word_lmdb, out_dir=str(tmp_path / "two"), max_steps=2, batch_size=4, ema=decay)).last_checkpoint)
    assert one["ema_updates"] == 1 and two["ema_updates"] == 2
    for k, w1 in one["train_model"].items():  # after one step: a copy
        torch.testing.assert_close(one["model"][k], w1, rtol=0, atol=0)
    d = min(decay, 2 / 11)
    moved = 0
    for k, w2 in two["train_model"].items():
        w1 = one["train_model"][k]
        if w2.is_floating_point():
            torch.testing.assert_close(two["model"][k], d * w1 + (1 - d) * w2, rtol=1e-5, atol=1e-7)
            moved += not torch.equal(w1, w2)
        else:  # BatchNorm's batch count: the current one
            assert torch.equal(two["model"][k], w2)
    assert moved > 10  # the check is not vacuous: the weights did move between the steps
    # resume: 3 steps, then on to 6, equals 6 straight (weights, average and its count)
    full = train(_cfg(tmp_path, word_lmdb, out_dir=str(tmp_path / "full"), max_steps=6, batch_size=4, ema=0.9))
    train(_cfg(tmp_path, word_lmdb, out_dir=str(tmp_path / "part"), max_steps=3, batch_size=4, ema=0.9))
    resumed = train(_cfg(tmp_path, word_lmdb, out_dir=str(tmp_path / "part"), max_steps=6, batch_size=4, ema=0.9, resume="auto"))
    a, b = load_checkpoint(full.last_checkpoint), load_checkpoint(resumed.last_checkpoint)
    assert a["ema_updates"] == b["ema_updates"] == 6
    for key in ("model", "train_model"):
        for k in a[key]:
            torch.testing.assert_close(a[key][k], b[key][k], rtol=1e-5, atol=1e-6)
    for p, v in zip(resumed.model.state_dict().values(), a["model"].values()):  # the result's model is the average
        torch.testing.assert_close(p, v, rtol=1e-5, atol=1e-6)
    # validation (and best.pt) read the average
    from crnn_ocr.tasks import get_task

    task_type, seen = type(get_task("ctc")), []
    original = task_type.validate

    def recording(self, model, *args, **kwargs):
        seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return original(self, model, *args, **kwargs)

    monkeypatch.setattr(task_type, "validate", recording)
    val = train(_cfg(tmp_path, word_lmdb, out_dir=str(tmp_path / "val"), max_steps=4, batch_size=4, ema=0.9,
                     val=[str(word_lmdb)], val_every=4))
    best = load_checkpoint(val.best_checkpoint)
    assert len(seen) == 1 and not all(torch.equal(best["model"][k], best["train_model"][k]) for k in best["model"])
    assert all(torch.equal(seen[0][k], v) for k, v in best["model"].items())
    with pytest.raises(ValueError, match=r"--ema must be a decay in \[0, 1\)"):
        train(_cfg(tmp_path, word_lmdb, ema=1.0))
