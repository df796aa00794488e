"""The CLIs end to end, and their one-line errors with exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from conftest import ROOT, render_word

ENV = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "OMP_NUM_THREADS": "1"}


def run_tool(name: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "tools" / name), *map(str, args)],
                          capture_output=True, text=True, env=ENV, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A checkpoint from two steps of tools/train.py (the tools smoke test)."""
    from conftest import WORDS, make_word_lmdb

    tmp = tmp_path_factory.mktemp("trained")
    lmdb = make_word_lmdb(tmp / "lmdb", WORDS)
    r = run_tool("train.py", "--data", lmdb, "--val", lmdb, "--max-steps", 2, "--batch-size", 8, "--workers", 0,
                 "--arch", "crnn_compact", "--out", tmp / "run", "--no-progress", "--val-every", 2)
    assert r.returncode == 0, r.stderr
    assert "done: 2 steps" in r.stdout
    assert "skipped 0 of 20" in r.stdout
    return tmp


def test_train_writes_checkpoints_log_and_plot(trained):
    run = trained / "run"
    assert {"last.pt", "best.pt", "log.csv", "curves.png", "alphabet.txt"} <= {p.name for p in run.iterdir()}


def test_infer_prints_text_and_confidence(trained, tmp_path):
    img = tmp_path / "word.png"
    cv2.imwrite(str(img), render_word("cat"))
    r = run_tool("infer.py", "--image", img, "--checkpoint", trained / "run" / "last.pt")
    assert r.returncode == 0, r.stderr
    path, text, conf = r.stdout.strip().split("\t")
    assert path == str(img) and set(text) <= set("0123456789abcdefghijklmnopqrstuvwxyz") and 0 <= float(conf) <= 1


def test_infer_json_folder_and_visualize(trained, tmp_path):
    for w in ("dog", "sun"):
        cv2.imwrite(str(tmp_path / f"{w}.png"), render_word(w))
    r = run_tool("infer.py", "--image", tmp_path, "--checkpoint", trained / "run" / "last.pt", "--json",
                 "--beam", 5, "--visualize", tmp_path / "vis")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [Path(row["path"]).name for row in rows] == ["dog.png", "sun.png"]
    for row in rows:
        assert len(row["spans"]) == len(row["token_ids"]) and 0 <= row["confidence"] <= 1
    assert sorted(p.name for p in (tmp_path / "vis").iterdir()) == ["dog.png", "sun.png"]


def test_infer_reads_every_good_image_of_a_folder_with_bad_ones(trained, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for w in ("cat", "dog", "sun"):
        cv2.imwrite(str(folder / f"{w}.png"), render_word(w))
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    (folder / "empty.jpg").write_bytes(b"")
    r = run_tool("infer.py", "--image", folder, "--checkpoint", trained / "run" / "last.pt", "--workers", 2)
    assert r.returncode == 1  # documented: some files could not be read
    assert [Path(line.split("\t")[0]).name for line in r.stdout.splitlines()] == ["cat.png", "dog.png", "sun.png"]
    assert r.stderr.splitlines() == [f"infer.py: skipped {folder / 'broken.png'}: not a decodable image",
                                     f"infer.py: skipped {folder / 'empty.jpg'}: not a decodable image",
                                     "infer.py: 2 of 5 files could not be read"]


def test_visualize_a_file_name_gives_one_indexed_picture_per_image(trained, tmp_path):
    ck = trained / "run" / "last.pt"
    for w in ("dog", "sun"):
        cv2.imwrite(str(tmp_path / f"{w}.png"), render_word(w))
    r = run_tool("infer.py", "--image", tmp_path / "dog.png", tmp_path / "sun.png", "--checkpoint", ck,
                 "--visualize", tmp_path / "spans.jpg")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.glob("spans*")) == ["spans_0001.jpg", "spans_0002.jpg"]
    assert all(cv2.imread(str(p)) is not None for p in tmp_path.glob("spans*"))
    r = run_tool("infer.py", "--image", tmp_path / "dog.png", "--checkpoint", ck, "--visualize", tmp_path / "one.png")
    assert r.returncode == 0 and (tmp_path / "one.png").is_file()
    r = run_tool("infer.py", "--image", tmp_path / "dog.png", "--checkpoint", ck, "--visualize", tmp_path / "spans.txt")
    assert (r.returncode, r.stdout) == (2, "") and "not an image file name" in r.stderr  # refused before any reading


def test_infer_with_lexicon_returns_a_lexicon_word(trained, tmp_path):
    img = tmp_path / "word.png"
    cv2.imwrite(str(img), render_word("cat"))
    lex = tmp_path / "lex.txt"
    lex.write_text("cat\ndog\nsun\n")
    r = run_tool("infer.py", "--image", img, "--checkpoint", trained / "run" / "last.pt", "--lexicon", lex)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\t")[1] in {"cat", "dog", "sun"}


def _one_line_error(r: subprocess.CompletedProcess, *needles: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_cli_errors_are_one_line_exit_2(trained, tmp_path):
    ck = trained / "run" / "last.pt"
    img = tmp_path / "w.png"
    cv2.imwrite(str(img), render_word("cat"))
    not_image = tmp_path / "notes.png"
    not_image.write_text("this is not a picture")
    _one_line_error(run_tool("infer.py", "--image", tmp_path / "missing.png", "--checkpoint", ck), "missing.png", "not found")
    unreadable = run_tool("infer.py", "--image", not_image, "--checkpoint", ck)  # a bad file, not a bad command: exit 1
    assert (unreadable.returncode, unreadable.stdout) == (1, "")
    assert unreadable.stderr == f"infer.py: skipped {not_image}: not a decodable image\n"
    _one_line_error(run_tool("infer.py", "--image", img, "--checkpoint", tmp_path), "is a directory")
    _one_line_error(run_tool("infer.py", "--image", img, "--checkpoint", not_image), "notes.png")
    _one_line_error(run_tool("infer.py", "--image", img, "--checkpoint", ck, "--beam", 0), "--beam")
    _one_line_error(run_tool("infer.py", "--image", img, "--checkpoint", ck, "--bogus"), "--bogus")
    _one_line_error(run_tool("train.py", "--data", tmp_path / "nope", "--max-steps", 1, "--out", tmp_path / "o"), "nope")
    _one_line_error(run_tool("train.py", "--data", trained / "lmdb"), "--max-steps")
    _one_line_error(run_tool("train.py", "--data", trained / "lmdb", "--max-steps", 1, "--alphabet", "klingon",
                             "--out", tmp_path / "o"), "klingon")
    _one_line_error(run_tool("train.py", "--data", trained / "lmdb", "--max-steps", 1, "--shortest-first", -1), "--shortest-first")
    _one_line_error(run_tool("train.py", "--data", trained / "lmdb", "--max-steps", 1, "--ema", 1), "--ema must be a decay in [0, 1)")
    _one_line_error(run_tool("train.py", "--data", trained / "lmdb", "--max-steps", 1, "--crop-jitter", 1.5), "--crop-jitter must be a share")
    _one_line_error(run_tool("train.py", "--data", trained / "lmdb", "--max-steps", 1, "--kind", "speech", "--crop-jitter", 0.5),
                    "--crop-jitter: image models only, not --kind speech")


def test_evaluate_on_lmdb_and_label_file(trained, tmp_path):
    ck = trained / "run" / "last.pt"
    r = run_tool("evaluate.py", "--checkpoint", ck, "--data", trained / "lmdb", "--predictions", tmp_path / "p.tsv")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("20 samples: word accuracy ")
    rows = [line.split("\t") for line in (tmp_path / "p.tsv").read_text().splitlines()]
    assert len(rows) == 20 and rows[0][1] == "cat"  # name, reference, prediction, confidence
    for w in ("cat", "dog"):
        cv2.imwrite(str(tmp_path / f"{w}.png"), render_word(w))
    (tmp_path / "gt.txt").write_text("cat.png\tcat\ndog.png\tDog\n")
    r = run_tool("evaluate.py", "--checkpoint", ck, "--labels", tmp_path / "gt.txt", "--lexicon", tmp_path / "gt.txt")
    assert r.returncode == 2 and "gt.txt" in r.stderr  # a lexicon line with a tab is not a word
    (tmp_path / "lex.txt").write_text("cat\ndog\n")
    r = run_tool("evaluate.py", "--checkpoint", ck, "--labels", tmp_path / "gt.txt", "--lexicon", tmp_path / "lex.txt")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("2 samples: word accuracy ")


def test_evaluate_skips_and_names_unreadable_images_and_exits_1(trained, tmp_path):
    for w in ("cat", "dog"):
        cv2.imwrite(str(tmp_path / f"{w}.png"), render_word(w))
    (tmp_path / "bad.png").write_bytes(b"not an image")
    (tmp_path / "gt.txt").write_text("cat.png\tcat\nbad.png\tsun\ndog.png\tdog\n")
    r = run_tool("evaluate.py", "--checkpoint", trained / "run" / "last.pt", "--labels", tmp_path / "gt.txt")
    assert r.returncode == 1, r.stderr
    assert r.stdout.startswith("2 samples: word accuracy ")
    assert r.stdout.rstrip().endswith(f", 1 undecodable images skipped (first: {tmp_path / 'bad.png'})")


@pytest.mark.parametrize("blocked,args,extra", [
    ("onnxruntime", ["--image", "w.png", "--backend", "onnx"], "onnx"),
    ("soundfile", ["--audio", "w.wav"], "speech"),
])
def test_a_missing_extra_is_one_line_naming_it(tmp_path, blocked, args, extra):
    cv2.imwrite(str(tmp_path / "w.png"), render_word("cat"))
    (tmp_path / "w.wav").write_bytes(b"RIFF")
    code = (f"import runpy, sys; sys.modules[{blocked!r}] = None; sys.argv = ['infer.py', *{args!r}]; "
            f"runpy.run_path({str(ROOT / 'tools' / 'infer.py')!r}, run_name='__main__')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=300)
    _one_line_error(r, f"needs {blocked}, which is not installed", f'pip install -e ".[{extra}]"')


def test_average_writes_the_weighted_mean_of_one_models_checkpoints(trained, tmp_path):
    import torch

    from crnn_ocr.checkpoint import load_checkpoint, save_checkpoint

    base = load_checkpoint(trained / "run" / "last.pt")
    other = {**base, "model": {k: (v * 3 + 1 if v.is_floating_point() else v + 5) for k, v in base["model"].items()}}
    save_checkpoint(tmp_path / "b.pt", other)
    r = run_tool("average.py", "--checkpoints", trained / "run" / "last.pt", tmp_path / "b.pt", "--weights", 3, 1,
                 "--out", tmp_path / "avg.pt")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"wrote {tmp_path / 'avg.pt'}: the weighted mean of 2 checkpoints' weights"
    avg = load_checkpoint(tmp_path / "avg.pt")
    assert avg["averaged_from"] == ["run/last.pt", f"{tmp_path.name}/b.pt"] and "optimizer" not in avg
    assert avg["alphabet"] == base["alphabet"] and avg["frontend"] == base["frontend"]
    for k, v in base["model"].items():
        want = v * 0.75 + (v * 3 + 1) * 0.25 if v.is_floating_point() else v  # integers: the first's
        torch.testing.assert_close(avg["model"][k], want, rtol=1e-6, atol=1e-6)
    # checkpoints of different models, and bad arguments: one line, exit 2
    save_checkpoint(tmp_path / "cased.pt", {**base, "alphabet": {**base["alphabet"], "symbols": "abc"}})
    _one_line_error(run_tool("average.py", "--checkpoints", trained / "run" / "last.pt", tmp_path / "cased.pt", "--out", tmp_path / "x.pt"),
                    "cased.pt: its alphabet differs from")
    _one_line_error(run_tool("average.py", "--checkpoints", tmp_path / "b.pt", "--out", tmp_path / "x.pt"), "two or more")
    _one_line_error(run_tool("average.py", "--checkpoints", tmp_path / "b.pt", tmp_path / "b.pt", "--weights", 1, "--out", tmp_path / "x.pt"),
                    "--weights: 1 weights for 2 checkpoints")
    _one_line_error(run_tool("average.py", "--checkpoints", tmp_path / "b.pt", tmp_path / "nope.pt", "--out", tmp_path / "x.pt"), "nope.pt")
    assert not (tmp_path / "x.pt").exists()
