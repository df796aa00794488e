"""Teacher-checked perturbed copies of real crops (crnn_ocr.synth.perturbed, datasets/teacher_copies.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from crnn_ocr.data import iter_lmdb_samples, write_lmdb
from crnn_ocr.synth.perturbed import CopyStats, main, perturb, severe_perturbation, teacher_copies


def crop(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    image = np.full((24, 60, 3), 230, np.uint8)
    cv2.putText(image, "ab", (4, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.6, tuple(int(v) for v in rng.integers(0, 80, 3)), 2)
    return cv2.imencode(".png", image)[1].tobytes()


def test_copies_are_kept_exactly_where_the_teacher_reads_the_label():
    samples = [(crop(0), "ABC!"), (crop(1), "xyz"), (b"not an image", "abc"), (crop(2), "--"), (crop(3), "a.b.c")]
    seen: list[int] = []

    def read(images: list[bytes]) -> list[str]:  # a teacher that reads every image as "abc"
        seen.append(len(images))
        return ["abc"] * len(images)

    stats = CopyStats()
    kept = list(teacher_copies(samples, read, copies=3, seed=5, batch=4, stats=stats))
    # crops 0 and 4 match under the case-insensitive alphanumeric protocol; 1 does not; 2 and 3 are skipped
    assert [label for _, label in kept] == ["ABC!"] * 3 + ["a.b.c"] * 3
    assert (stats.crops, stats.undecodable, stats.no_alnum, stats.originals_read, stats.copies, stats.kept) == (5, 1, 1, 2, 9, 6)
    assert sum(seen) == 12  # three crops, each read once unperturbed and three times perturbed
    assert "kept 6 of 9 perturbed copies (66.7%)" in stats.summary()
    for png, _ in kept:
        assert cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR).shape == (24, 60, 3)


def test_perturbation_is_seeded_per_crop_and_copy():
    image = cv2.imdecode(np.frombuffer(crop(0), np.uint8), cv2.IMREAD_COLOR)
    augmentation = severe_perturbation()
    a = perturb(image, augmentation, (1, 0, 0))
    assert a.shape == image.shape and a.dtype == np.uint8
    assert np.array_equal(a, perturb(image, severe_perturbation(), (1, 0, 0)))
    others = [perturb(image, augmentation, s) for s in [(1, 0, 1), (1, 1, 0), (2, 0, 0)]]
    assert all(not np.array_equal(a, o) for o in others)


def test_cli_rejects_bad_arguments_with_one_line(tmp_path, capsys):
    write_lmdb(tmp_path / "real", [(crop(0), "ab")])
    teacher = tmp_path / "teacher.onnx"
    teacher.write_bytes(b"")
    cases = [
        (["--data", str(tmp_path / "none"), "--teacher", str(teacher)], "--data"),
        (["--data", str(tmp_path / "real"), "--teacher", str(tmp_path / "missing.onnx")], "--teacher"),
        (["--data", str(tmp_path / "real"), "--teacher", str(teacher), "--copies", "0"], "--copies"),
        (["--data", str(tmp_path / "real"), "--teacher", str(teacher), "--out", str(tmp_path / "real")], "--out"),
    ]
    for args, name in cases:
        if "--out" not in args:
            args = args + ["--out", str(tmp_path / "out")]
        with pytest.raises(SystemExit) as e:
            main(args)
        assert e.value.code == 2
        assert name in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()
    assert [label for _, _, label in iter_lmdb_samples(tmp_path / "real")] == ["ab"]
