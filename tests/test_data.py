"""Images, LMDB layout, filtering and counting, collation, bucketing, augmentation, create_lmdb CLI."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import cv2
import lmdb
import numpy as np
import pytest
import torch
from torch.utils.data import ConcatDataset, DataLoader

from crnn_ocr.alphabet import Alphabet
from crnn_ocr.augment import build_augmentation
from crnn_ocr.data import (
    BucketBatchSampler,
    LmdbDataset,
    collate_batch,
    create_lmdb_from_folder,
    iter_lmdb_samples,
    read_label_file,
    write_lmdb,
)
from crnn_ocr.frontend import ImageFrontend
from crnn_ocr.model import ModelConfig, output_length
from crnn_ocr.preprocessing import decode_image, image_to_tensor, pad_batch, resize_to_height, resized_width

torch.set_num_threads(1)
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
ROOT = Path(__file__).resolve().parents[1]
ALNUM = Alphabet.preset("alphanumeric")


def png(h: int, w: int, value: int = 200, channels: int = 1) -> bytes:
    img = np.full((h, w, 3) if channels == 3 else (h, w), value, np.uint8)
    img[h // 4 : 3 * h // 4, 1 : max(2, w - 1)] = 30  # something dark to "read"
    return cv2.imencode(".png", img)[1].tobytes()


def jpg(h: int, w: int) -> bytes:
    return cv2.imencode(".jpg", np.full((h, w), 180, np.uint8))[1].tobytes()


def raw_lmdb(path: Path, entries: dict[bytes, bytes]) -> Path:
    """The minimal writer every CRNN tool uses: plain puts, no help from crnn_ocr."""
    env = lmdb.open(str(path), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for k, v in entries.items():
            txn.put(k, v)
    env.close()
    return path


# ------------------------------------------------------------------------------------ images
def test_decode_image_inputs(tmp_path):
    assert decode_image(png(8, 12), 1).shape == (8, 12)
    assert decode_image(png(8, 12), 3).shape == (8, 12, 3)
    p = tmp_path / "a.png"
    p.write_bytes(png(8, 12))
    assert decode_image(p).dtype == np.uint8
    assert decode_image(str(p), 3).shape == (8, 12, 3)
    sixteen = np.full((4, 5), 65535, np.uint16)
    assert decode_image(cv2.imencode(".png", sixteen)[1].tobytes()).max() == 255
    rgba = np.zeros((4, 5, 4), np.uint8)  # fully transparent black -> white
    assert decode_image(rgba, 1).min() == 255
    bgr = np.zeros((2, 2, 3), np.uint8)
    bgr[..., 2] = 255  # red in OpenCV's BGR order
    assert decode_image(cv2.imencode(".png", bgr)[1].tobytes(), 3)[0, 0].tolist() == [255, 0, 0]


@pytest.mark.parametrize("bad", [b"", b"not an image at all", png(8, 8)[:30], np.zeros((0, 4), np.uint8)])
def test_decode_image_rejects_garbage(bad):
    with pytest.raises(ValueError, match="not a decodable image"):
        decode_image(bad)


def test_decode_image_missing_and_empty_file(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        decode_image(tmp_path / "nope.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.png: not a decodable image"):
        decode_image(tmp_path / "empty.png")


def test_resize_pad_and_tensor():
    img = np.zeros((64, 100), np.uint8)
    assert resize_to_height(img, 32).shape == (32, 50)
    assert resize_to_height(img, 32, max_width=40).shape == (32, 40)  # squeezed
    narrow = np.zeros((32, 3), np.uint8)
    narrow[:, -1] = 255
    padded = resize_to_height(narrow, 32, min_width=8)
    assert padded.shape == (32, 8) and (padded[:, 3:] == 255).all()  # last column repeated
    assert resize_to_height(np.zeros((10, 20, 3), np.uint8), 32).shape == (32, 64, 3)
    assert resize_to_height(img, 32, width_scale=1.5).shape == (32, 75)  # stretched after the keep-ratio resize
    assert resize_to_height(img, 32, width_scale=1.5, max_width=60).shape == (32, 60)  # the cap still holds
    assert resized_width(100, 64, 32, width_scale=1.5) == 75 and resized_width(100, 64, 32, width_scale=1.5, max_width=60) == 60
    t = image_to_tensor(np.array([[0, 255]], np.uint8))
    assert t.shape == (1, 1, 2) and t.dtype == torch.float32 and t.tolist() == [[[-1.0, 1.0]]]
    batch = pad_batch([torch.zeros(1, 2, 3), torch.ones(1, 2, 1)])
    assert batch.shape == (2, 1, 2, 3) and (batch[1] == 1).all()


# ------------------------------------------------------------------------------------ LMDB
def test_write_lmdb_round_trip(tmp_path):
    samples = [(png(32, 40 + 10 * i), label) for i, label in enumerate(["Hello", "world", "42"])]
    assert write_lmdb(tmp_path / "db", samples, map_size=4096, commit_every=1) == 3  # map grows as needed
    assert not (tmp_path / "db" / "lock.mdb").exists()
    ds = LmdbDataset(tmp_path / "db", ALNUM)
    assert len(ds) == 3 and ds.summary() == "skipped 0 of 3"
    assert ds.widths.tolist() == [40, 50, 60]
    item = ds[0]
    assert item["label"] == "hello"  # the alphabet folds case; the label is what the model must output
    assert item["ids"] == ALNUM.encode("hello") and item["width"] == 40
    assert item["image"].shape == (1, 32, 40) and item["image"].min() >= -1 and item["image"].max() <= 1
    with pytest.raises(FileExistsError):
        write_lmdb(tmp_path / "db", samples)


def test_reads_an_lmdb_from_a_minimal_writer(tmp_path):
    path = raw_lmdb(
        tmp_path / "ext",
        {
            b"num-samples": b"2",
            b"image-000000001": jpg(64, 128),
            b"label-000000001": b"abc",
            b"image-000000002": png(16, 10, channels=3),
            b"label-000000002": b"7",
        },
    )
    ds = LmdbDataset(path, ALNUM, ImageFrontend(channels=3))
    assert [ds[i]["label"] for i in range(2)] == ["abc", "7"]
    assert ds.widths.tolist() == [64, 20]
    assert ds[0]["image"].shape == (3, 32, 64)


def test_filters_are_counted(tmp_path):
    entries = {b"num-samples": b"9"}  # 9 declared, 8 present
    good = [(png(32, 64), "ok1"), (png(32, 64), "ok2")]
    bad = [
        (png(32, 64), b""),  # empty label
        (png(32, 64), b"\xff\xfe"),  # not UTF-8
        (png(32, 64), "caf\u00e9".encode()),  # unknown symbol
        (png(32, 64), b"a+b"),  # unknown symbol
        (b"\x00garbage", b"abc"),  # corrupt header
        (png(32, 8), b"abcdefgh"),  # 8 symbols, width 16 -> 5 frames
    ]
    for i, (image, label) in enumerate(good + bad, 1):
        entries[b"image-%09d" % i] = image
        entries[b"label-%09d" % i] = label.encode() if isinstance(label, str) else label
    cfg = ModelConfig(num_classes=ALNUM.num_classes)
    ds = LmdbDataset(raw_lmdb(tmp_path / "db", entries), ALNUM, min_frames_fn=lambda w: output_length(w, cfg))
    assert len(ds) == 2
    assert ds.summary() == (
        "skipped 7 of 9: 1 missing entry, 1 empty label, 1 non-UTF-8 label, 2 unknown symbols, "
        "1 corrupt image, 1 too long for their width"
    )
    assert ds.stats["too_long"] == 1 and ds.stats["kept"] == 2 and ds.stats["total"] == 9


def test_corrupt_pixels_give_none_and_are_counted(tmp_path):
    broken = png(32, 48)[:60]  # valid PNG header, truncated data
    path = raw_lmdb(
        tmp_path / "db",
        {b"num-samples": b"2", b"image-000000001": broken, b"label-000000001": b"bad",
         b"image-000000002": png(32, 48), b"label-000000002": b"good"},
    )  # fmt: skip
    ds = LmdbDataset(path, ALNUM)
    assert len(ds) == 2 and ds[0] is None
    batch = collate_batch([ds[0], ds[1]])
    assert batch["num_corrupt"] == 1 and batch["labels"] == ["good"]
    empty = collate_batch([None])
    assert empty["num_corrupt"] == 1 and empty["images"].shape[0] == 0


def test_everything_skipped_raises(tmp_path):
    path = raw_lmdb(tmp_path / "db", {b"num-samples": b"2", b"image-000000001": png(32, 32), b"label-000000001": b"?!"})
    with pytest.raises(ValueError, match=r"db: no usable samples \(skipped 2 of 2: 1 missing entry, 1 unknown symbols\)"):
        LmdbDataset(path, ALNUM)
    with pytest.raises(ValueError, match="no such LMDB"):
        LmdbDataset(tmp_path / "missing", ALNUM)
    with pytest.raises(ValueError, match="num-samples"):
        LmdbDataset(raw_lmdb(tmp_path / "other", {b"x": b"y"}), ALNUM)


def test_collate_uses_true_widths_and_pads_right(tmp_path):
    write_lmdb(tmp_path / "db", [(png(32, 20), "ab"), (png(32, 50), "cde")])
    ds = LmdbDataset(tmp_path / "db", ALNUM, ImageFrontend(max_width=40))
    batch = collate_batch([ds[0], ds[1]])
    assert batch["images"].shape == (2, 1, 32, 40)
    assert batch["input_widths"].tolist() == [20, 40]  # true (capped) widths, not the padded one
    assert batch["targets"].tolist() == ALNUM.encode("abcde")
    assert batch["target_lengths"].tolist() == [2, 3] and batch["labels"] == ["ab", "cde"]
    torch.testing.assert_close(batch["images"][0, :, :, 20:], ds[0]["image"][:, :, 19:20].expand(1, 32, 20))


def test_dataloader_workers_and_augmentation(tmp_path):
    write_lmdb(tmp_path / "db", [(png(32, 30 + i), f"w{i}") for i in range(8)])
    ds = LmdbDataset(tmp_path / "db", ALNUM, augment=True, min_frames_fn=lambda w: w // 4 + 1)
    pickle.loads(pickle.dumps(ds))  # spawn-started workers get a pickled copy
    ds[0]  # opens the LMDB in this process before forking: workers must reopen it
    loader = DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate_batch)
    batches = list(loader)
    assert sorted(label for b in batches for label in b["labels"]) == sorted(f"w{i}" for i in range(8))
    assert all(b["images"].shape[2] == 32 for b in batches)


def test_augmentation_keeps_shape_and_dtype():
    img = np.random.default_rng(0).integers(0, 256, (32, 70), dtype=np.uint8)
    for strength in ("none", "light", "default", "strong"):
        aug = build_augmentation(strength, seed=1)
        for _ in range(10):
            out = aug(img)
            assert out.shape == img.shape and out.dtype == np.uint8
    with pytest.raises(ValueError, match="unknown augmentation strength"):
        build_augmentation("extreme")


# ------------------------------------------------------------------------------------ sampling
def test_bucket_sampler_is_deterministic_and_covers_everything():
    widths = np.random.default_rng(0).integers(16, 200, size=103)
    sampler = BucketBatchSampler(widths, 8, seed=3, chunk_batches=4)
    first = list(sampler)
    assert first == list(BucketBatchSampler(widths, 8, seed=3, chunk_batches=4))
    assert sorted(i for b in first for i in b) == list(range(103)) and len(first) == len(sampler) == 13
    sampler.set_epoch(1)
    assert list(sampler) != first
    padding = lambda batches: sum(max(widths[b]) * len(b) - widths[b].sum() for b in batches)  # noqa: E731
    unsorted = [list(range(i, min(i + 8, 103))) for i in range(0, 103, 8)]
    assert padding(first) < 0.5 * padding(unsorted)


def test_shortest_first_epochs_run_in_width_order_then_shuffle():
    """SortaGrad: the first ``shortest_first`` epochs are one sort by width, shortest batch first; then as usual."""
    widths = np.random.default_rng(1).permutation(np.arange(40) + 10)  # 40 distinct widths
    sampler = BucketBatchSampler(widths, 8, seed=2, drop_last=True, chunk_batches=2, shortest_first=1)
    curriculum = list(sampler)
    assert [sorted(widths[b].tolist()) for b in curriculum] == [list(range(10 + 8 * k, 18 + 8 * k)) for k in range(5)]
    sampler.set_epoch(1)
    later = list(sampler)
    plain = BucketBatchSampler(widths, 8, seed=2, drop_last=True, chunk_batches=2)
    plain.set_epoch(1)
    assert later == list(plain)  # from the second epoch on: shuffled as without the curriculum
    assert [max(widths[b]) for b in later] != sorted(max(widths[b]) for b in later)
    shards = [list(BucketBatchSampler(widths, 4, seed=2, rank=r, world_size=2, shortest_first=1)) for r in range(2)]
    assert [max(widths[b]) for b in shards[0]] == sorted(max(widths[b]) for b in shards[0])  # each rank short to long
    with pytest.raises(ValueError, match="shortest_first"):
        BucketBatchSampler(widths, 8, shortest_first=-1)
    assert list(BucketBatchSampler(np.empty(0, np.int64), 8, shortest_first=1)) == []  # an empty epoch, no error


@pytest.mark.parametrize("drop_last", [False, True])
def test_bucket_sampler_ddp_shards(drop_last):
    widths = np.arange(50) + 10
    shards = [list(BucketBatchSampler(widths, 4, seed=1, rank=r, world_size=3, drop_last=drop_last)) for r in range(3)]
    expected = 4 if drop_last else 5  # 12 full batches / 3, or ceil(13 / 3) padded with repeats
    assert [len(s) for s in shards] == [expected] * 3
    seen = [i for s in shards for b in s for i in b]
    if drop_last:
        assert len(seen) == len(set(seen)) == 48
    else:
        assert set(seen) == set(range(50))


def test_mixing_with_ratios(tmp_path):
    """Datasets are mixed as the trainer mixes them: concatenated, with each one's size and ratio in the sampler."""
    write_lmdb(tmp_path / "a", [(png(32, 32), "a")] * 10)
    write_lmdb(tmp_path / "b", [(png(32, 64), "b")] * 40)
    parts = [LmdbDataset(tmp_path / "a", ALNUM), LmdbDataset(tmp_path / "b", ALNUM)]
    mixed = ConcatDataset(parts)
    assert len(mixed) == 50 and mixed[0]["label"] == "a" and mixed[10]["label"] == "b"
    widths = np.concatenate([ds.widths for ds in parts])
    sampler = BucketBatchSampler(widths, 10, seed=0, group_sizes=[len(ds) for ds in parts], ratios=[0.5, 0.5])
    drawn = [i for b in sampler for i in b]
    assert len(drawn) == 50 and sum(i < 10 for i in drawn) == 25  # half from the small set
    assert {mixed[i]["label"] for i in drawn} == {"a", "b"} and parts[0].summary() == "skipped 0 of 10"
    explicit = BucketBatchSampler(widths, 10, group_sizes=[10, 40], ratios=[1, 3], num_samples=20)
    assert sum(i < 10 for b in explicit for i in b) == 5
    with pytest.raises(ValueError, match="must sum to 50"):
        BucketBatchSampler(widths, 10, group_sizes=[10, 30], ratios=[1, 1])


def test_iter_lmdb_samples_is_unfiltered(tmp_path):
    write_lmdb(tmp_path / "db", [(png(32, 32), "caf\u00e9"), (b"junk", "x")])
    assert [(i, label) for i, _, label in iter_lmdb_samples(tmp_path / "db")] == [(1, "caf\u00e9"), (2, "x")]
    with pytest.raises(ValueError, match="num-samples"):
        list(iter_lmdb_samples(raw_lmdb(tmp_path / "other", {b"k": b"v"})))


# ------------------------------------------------------------------------------------ create_lmdb
def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "tools" / "create_lmdb.py"), *args], capture_output=True, text=True, timeout=120)


def test_create_lmdb_cli_from_gt_txt(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(png(32, 40))
    (tmp_path / "imgs" / "b.jpg").write_bytes(jpg(32, 60))
    (tmp_path / "imgs" / "c.png").write_bytes(b"broken")
    (tmp_path / "gt.txt").write_text("imgs/a.png\tHello\nimgs/b.jpg\tthere 2\n\nimgs/c.png\tx\nimgs/d.png\ty\n")
    res = run_cli("--out", str(tmp_path / "db"), "--labels", str(tmp_path / "gt.txt"))
    assert res.returncode == 0, res.stderr
    imgs = tmp_path / "imgs"
    assert res.stdout.strip() == (f"wrote 2 samples to {tmp_path / 'db'} (skipped 2: 1 undecodable image, 1 missing file; "
                                  f"first: {imgs / 'c.png'} (undecodable image), {imgs / 'd.png'} (missing file))")
    ds = LmdbDataset(tmp_path / "db", Alphabet.preset("printable"))
    assert [ds[i]["label"] for i in range(2)] == ["Hello", "there 2"]


@pytest.mark.parametrize(
    "make",
    [
        lambda d: ["--labels", str(d / "missing.txt")],
        lambda d: ["--folder", str(d / "missing")],
        lambda d: (d / "gt.txt").write_text("a.png Hello\n") and ["--labels", str(d / "gt.txt")],
    ],
)
def test_create_lmdb_cli_bad_input_exits_2(tmp_path, make):
    res = run_cli("--out", str(tmp_path / "db"), *make(tmp_path))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert res.stderr.startswith("create_lmdb: error:")


def test_create_lmdb_from_folder(tmp_path):
    (tmp_path / "f" / "sub").mkdir(parents=True)
    (tmp_path / "f" / "hello_12.png").write_bytes(png(32, 40))
    (tmp_path / "f" / "sub" / "x.png").write_bytes(png(32, 40))
    (tmp_path / "f" / "sub" / "x.txt").write_text("Side car\n")
    stats = create_lmdb_from_folder(tmp_path / "db", tmp_path / "f")
    assert stats.written == 2 and stats.skipped == 0
    ds = LmdbDataset(tmp_path / "db", Alphabet.preset("printable"))
    assert sorted(ds[i]["label"] for i in range(2)) == ["Side car", "hello"]


def test_read_label_file_line_numbers(tmp_path):
    (tmp_path / "gt.txt").write_text("a.png\tok\nno tab here\n")
    with pytest.raises(ValueError, match=r"gt.txt:2: expected"):
        read_label_file(tmp_path / "gt.txt")
