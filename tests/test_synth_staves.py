"""Music staves engraved in the loader (``staves:CONFIG.json``): the run's height and the label's
ids, seeded per sample and epoch, the same staff as the offline route, independent of the
workers, skipped labels counted, one-line config errors, and a short score run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from conftest import ROOT, load_script, png_bytes, require_engraving
from crnn_ocr.alphabet import Alphabet
from crnn_ocr.cli import run_cli
from crnn_ocr.data import BucketBatchSampler, collate_batch, write_lmdb
from crnn_ocr.data.sources import open_training_source, split_source
from crnn_ocr.frontend import ImageFrontend

LABELS = [
    "clef-G2 keySignature-DM timeSignature-3/4 note-F#4_eighth note-A4_eighth note-D5_quarter note-F#5_quarter barline",
    "clef-F4 keySignature-BbM timeSignature-4/4 note-Bb2_half rest-quarter note-D3_quarter barline",
    "clef-C3 timeSignature-2/4 note-C4_quarter note-E4_quarter barline note-G4_half barline",
    "clef-G2 keySignature-EbM timeSignature-2/4 multirest-3 barline rest-quarter note-Bb4_eighth note-G4_eighth barline",
    "clef-G2 timeSignature-6/8 note-G4_quarter. note-A4_eighth note-B4_eighth note-C5_eighth barline",
    "clef-C1 keySignature-GM timeSignature-C note-D5_quarter tie note-D5_eighth gracenote-E5_sixteenth note-C5_eighth "
    "note-B4_half barline",
]
VOCAB = Alphabet.from_labels(LABELS, separator=" ")
FRONTEND = ImageFrontend(height=64, channels=1, max_width=600)


@pytest.fixture(autouse=True)
def _engraving():
    require_engraving()


def labels_lmdb(tmp_path: Path) -> Path:
    """The six labels in a standard-layout LMDB; the source reads only the labels (the images are blank)."""
    path = tmp_path / "labels_lmdb"
    if not path.exists():
        blank = png_bytes(np.full((8, 8), 255, np.uint8))
        write_lmdb(path, [(blank, label) for label in LABELS])
    return path


def staves_config(tmp_path: Path, name: str = "staves.json", **options) -> Path:
    labels_lmdb(tmp_path)
    path = tmp_path / name
    path.write_text(json.dumps({"labels": "labels_lmdb", **options}))
    return path


def staves_set(tmp_path: Path, seed: int = 0, frontend: ImageFrontend = FRONTEND, **options):
    from crnn_ocr.synth.online_music import EngravedStavesDataset

    augment = options.pop("augment", False)
    ds = open_training_source(f"staves:{staves_config(tmp_path, **options)}", VOCAB, frontend, augment=augment, seed=seed)
    assert isinstance(ds, EngravedStavesDataset)
    return ds


def test_staves_have_the_runs_height_and_their_labels_ids(tmp_path):
    ds = staves_set(tmp_path, seed=1)
    assert len(ds) == 6 and ds.summary() == (
        f"6 staves per epoch engraved in the loader from 6 labels of {tmp_path / 'labels_lmdb'} (skipped 0 of 6); "
        "5 fonts, distort 0.5")
    order = ds.label_order(0)
    assert sorted(order) == list(range(6))
    seen = []
    for i in range(6):
        item = ds[i]
        label = LABELS[order[i]]
        assert item["image"].shape[:2] == (1, 64) and item["image"].dtype == torch.float32
        assert item["ids"] == VOCAB.encode(label) and item["label"] == label
        assert item["width"] == item["image"].shape[-1] <= 600
        seen.append(item["label"])
    assert sorted(seen) == sorted(LABELS)  # every label once per epoch of n samples


def test_same_seed_same_staff_and_a_fresh_engraving_each_epoch(tmp_path):
    a, b = staves_set(tmp_path, seed=1, augment=True), staves_set(tmp_path, seed=1, augment=True)
    other = staves_set(tmp_path, seed=2, augment=True)
    for i in (0, 4):
        assert torch.equal(a[i]["image"], b[i]["image"])
    k = int(a.label_order(0)[0])
    i1 = int(np.flatnonzero(a.label_order(1) == k)[0])  # the same label in epoch 1
    a.set_epoch(1)
    b.set_epoch(1)
    assert torch.equal(a[i1]["image"], b[i1]["image"])
    a.set_epoch(0)
    first = a[0]
    a.set_epoch(1)
    again = a[i1]
    assert again["label"] == first["label"] and (
        again["image"].shape != first["image"].shape or not torch.equal(again["image"], first["image"]))
    assert not np.array_equal(a.label_order(0), a.label_order(1))  # a fresh order each epoch
    assert not np.array_equal(a.label_order(0), other.label_order(0))


def test_a_sample_is_what_the_offline_route_would_train_on(tmp_path):
    """Two routes that must agree: engraved in the loader, or engraved, stored as PNG and read back."""
    from crnn_ocr.synth.music import Engraver, Engraving, rasterize
    from crnn_ocr.synth.online_music import _WIDTH_FIT

    ds = staves_set(tmp_path, seed=4, distort=0.0, fonts=["Leipzig", "Bravura"])
    engraver = Engraver()
    for epoch, i in ((0, 0), (0, 3), (2, 3)):
        ds.set_epoch(epoch)
        rng = np.random.default_rng([4, 0, epoch, i])
        label = LABELS[ds.label_order(epoch)[i]]
        img = rasterize(engraver.svg(label.split(), Engraving.random(rng, ["Leipzig", "Bravura"])), 64)
        item = ds[i]
        assert item["label"] == label
        assert torch.equal(item["image"], FRONTEND.training_input(png_bytes(img)))
    widths = ds.epoch_widths(2, np.arange(12))  # count 6: samples 6.. are the same labels again
    order = ds.label_order(2)
    expected = [round(64 * (_WIDTH_FIT[0] * len(LABELS[order[i % 6]].split()) + _WIDTH_FIT[1])) for i in range(12)]
    assert widths.dtype == np.int64 and widths.tolist() == expected


def test_reclef_and_rekey_move_labels_and_engrave_what_they_say(tmp_path):
    from crnn_ocr.music import CLEFS, parse_token, primus_vocabulary_file, validate_semantic
    from crnn_ocr.synth.music import Engraver, Engraving, move_to_clef, move_to_key, rasterize

    vocab = Alphabet.from_file(primus_vocabulary_file(), separator=" ")
    config = staves_config(tmp_path, reclef=1.0, rekey=1.0, distort=0.0, count=12)
    ds = open_training_source(f"staves:{config}", vocab, FRONTEND, seed=3)
    assert ds.summary().endswith("distort 0, reclef 1, rekey 1")
    engraver, clefs, moved = Engraver(), set(), 0
    for i in range(12):
        original = LABELS[ds.label_order(0)[i % 6]].split()
        rng = np.random.default_rng([3, 0, 0, i, 1])
        rng.random()
        clef = CLEFS[int(rng.integers(len(CLEFS)))]
        rng.random()
        expected = move_to_key(move_to_clef(original, clef), int(rng.integers(-7, 8)))
        if any(t not in vocab for t in expected) or validate_semantic(expected):
            expected = original
        item = ds[i]
        assert item["label"].split() == expected
        moved += expected != original
        clefs.add(expected[0])
        # same rhythm and staff positions up to whole octaves
        assert [parse_token(t).kind for t in expected] == [parse_token(t).kind for t in original]
        if i < 2:
            img = rasterize(engraver.svg(expected, Engraving.random(np.random.default_rng([3, 0, 0, i]), list(ds.config.fonts))), 64)
            assert torch.equal(item["image"], FRONTEND.training_input(png_bytes(img)))
    assert moved >= 10 and len(clefs) >= 5
    with pytest.raises(ValueError, match="'reclef' must be a fraction"):
        open_training_source(f"staves:{staves_config(tmp_path, name='bad.json', reclef=1.5)}", vocab, FRONTEND)



def test_add_accidentals_changes_alterations_and_spares_tied_notes():
    from crnn_ocr.music import parse_pitch
    from crnn_ocr.synth.music import add_accidentals

    tokens = LABELS[5].split()  # C1, G major: D5 tie D5, a grace note E5, C5, B4
    out = add_accidentals(tokens, np.random.default_rng(0), 1.0)
    assert [t.split("-")[0] for t in out] == [t.split("-")[0] for t in tokens]  # same kinds, same order
    assert out[3:6] == tokens[3:6]  # the tied pair keeps its pitch
    for before, after in zip(tokens[6:9], out[6:9]):
        (p0, r0), (p1, r1) = before.split("-", 1)[1].split("_", 1), after.split("-", 1)[1].split("_", 1)
        (s0, a0, o0), (s1, a1, o1) = parse_pitch(p0), parse_pitch(p1)
        assert (s0, o0, r0) == (s1, o1, r1) and a0 != a1 and a1 in (-1, 0, 1)
    assert add_accidentals(tokens, np.random.default_rng(0), 0.0) == tokens
    # a token outside the vocabulary leaves its note alone; the other notes take the same draws
    limited = add_accidentals(tokens, np.random.default_rng(0), 1.0, vocabulary=frozenset(tokens) | {out[6]})
    assert limited == tokens[:6] + [out[6]] + tokens[7:]


def test_accidentals_share_alters_labels_and_engraves_them(tmp_path):
    from crnn_ocr.music import primus_vocabulary_file, semantic_to_mei
    from crnn_ocr.synth.music import add_accidentals

    vocab = Alphabet.from_file(primus_vocabulary_file(), separator=" ")
    config = staves_config(tmp_path, accidentals=1.0, accidental_rate=0.5, distort=0.0, count=6)
    ds = open_training_source(f"staves:{config}", vocab, FRONTEND, seed=3)
    assert ds.summary().endswith("distort 0, accidentals 1")
    drawn_before = drawn_after = 0
    for i in range(6):
        original = LABELS[ds.label_order(0)[i]].split()
        rng = np.random.default_rng([3, 0, 0, i, 2])
        rng.random()
        expected = add_accidentals(original, rng, 0.5, vocab)
        assert ds[i]["label"].split() == expected  # engraved and agreeing (not None)
        drawn_before += semantic_to_mei(original).count(' accid="')
        drawn_after += semantic_to_mei(expected).count(' accid="')
    assert drawn_after > drawn_before + 3
    with pytest.raises(ValueError, match="'accidental_rate' must be a fraction"):
        open_training_source(f"staves:{staves_config(tmp_path, name='bad.json', accidental_rate=2)}", vocab, FRONTEND)

def test_max_width_squeezes_staves_and_caps_their_estimates(tmp_path):
    narrow = ImageFrontend(height=64, channels=1, max_width=150)
    ds = staves_set(tmp_path, frontend=narrow, count=9)
    assert len(ds) == 9 and ds.epoch_widths(0, np.arange(9)).max() == 150
    assert all(ds[i]["width"] <= 150 for i in (0, 7))


def _loader(tmp_path: Path, workers: int, epoch: int) -> DataLoader:
    ds = staves_set(tmp_path, seed=3, augment=True, count=8)
    sampler = BucketBatchSampler(ds.widths, 4, seed=3, drop_last=True, width_fns=[ds.epoch_widths])
    sampler.set_epoch(epoch)
    ds.set_epoch(epoch)
    return DataLoader(ds, batch_sampler=sampler, collate_fn=collate_batch, num_workers=workers)


def test_batches_do_not_depend_on_the_number_of_workers(tmp_path):
    torch.set_num_threads(1)
    one = list(_loader(tmp_path, 0, epoch=1))
    two = list(_loader(tmp_path, 2, epoch=1))
    assert len(one) == len(two) == 2
    for x, y in zip(one, two):
        assert x["labels"] == y["labels"] and torch.equal(x["images"], y["images"])
        assert x["num_corrupt"] == 0


def test_labels_outside_the_alphabet_or_not_music_are_skipped_and_counted(tmp_path):
    from crnn_ocr.synth.online_music import EngravedStavesDataset, StavesConfig

    (tmp_path / "labels.txt").write_text("\n".join([
        LABELS[0], "", LABELS[1], "clef-G2 note-C4_quarter slur barline",  # 'slur': outside the alphabet
        "note-C4_quarter barline clef-G2",  # a note before any clef
    ]) + "\n")
    (tmp_path / "text.json").write_text(json.dumps({"labels": "labels.txt", "count": 5}))
    config = StavesConfig.load(tmp_path / "text.json")
    ds = EngravedStavesDataset(config, VOCAB, FRONTEND)
    assert len(ds) == 5 and ds.stats["kept"] == 2
    assert "from 2 labels" in ds.summary() and (
        "(skipped 2 of 4: 1 with tokens outside the alphabet, 1 not valid music)" in ds.summary())
    with pytest.raises(ValueError) as e:
        EngravedStavesDataset(config, VOCAB, FRONTEND, bad_labels="raise")
    assert str(e.value) == (f"staves:{tmp_path / 'text.json'}: {tmp_path / 'labels.txt'}: label 3: symbol 'slur' at "
                            f"position 2 of label 'clef-G2 note-C4_quarter slur barline' is not in the alphabet")
    with pytest.raises(ValueError, match=r"no usable labels in .*labels_lmdb \(skipped 6 of 6: 6 with tokens outside the alphabet\)$"):
        EngravedStavesDataset(StavesConfig.load(staves_config(tmp_path)), Alphabet.preset("alphanumeric"), FRONTEND)


def test_a_staff_that_disagrees_with_its_label_is_dropped_and_counted(tmp_path, monkeypatch):
    import crnn_ocr.synth.online_music as online_music

    ds = staves_set(tmp_path)
    monkeypatch.setattr(online_music, "check_agreement", lambda tokens, svg: ["2 systems drawn, expected 1"])
    assert ds[0] is None and ds[1] is None
    assert ds.summary().endswith("; read in this process: 0 not engraved, 2 disagreeing with their label")
    assert collate_batch([ds[2]])["num_corrupt"] == 1


def test_split_source_and_config_errors_are_one_line(tmp_path):
    from crnn_ocr.synth.online_music import StavesConfig

    assert split_source("staves:a/b.json") == ("staves", "a/b.json")
    bad = tmp_path / "bad.json"
    for text, message in (
        ("{", "not JSON"), ("[1]", "expected a JSON object"), ("{}", "'labels' must name"),
        ('{"labels": "x", "count": 0}', "'count' must be a positive integer"),
        ('{"labels": "x", "seed": -1}', "'seed' must be"), ('{"labels": "x", "distort": 2}', "'distort' must be a fraction"),
        ('{"labels": "x", "fonts": ["Arial"]}', "'fonts' must be a list of Verovio fonts"),
        ('{"labels": "x", "height": 64}', "unknown option height"),
    ):
        bad.write_text(text)
        with pytest.raises(ValueError) as e:
            StavesConfig.load(bad)
        assert str(e.value).startswith(f"staves:{bad}: ") and message in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ValueError, match="cannot read the config"):
        StavesConfig.load(tmp_path / "missing.json")
    bad.write_text('{"labels": "nowhere.txt"}')
    with pytest.raises(ValueError, match=f"staves:{bad}: 'labels' {tmp_path / 'nowhere.txt'}: cannot read"):
        open_training_source(f"staves:{bad}", VOCAB, FRONTEND)


def test_a_score_run_trains_on_engraved_staves(tmp_path, capsys):
    from crnn_ocr.engine import TrainConfig, train

    torch.set_num_threads(1)
    VOCAB.save(tmp_path / "vocabulary.txt")
    result = train(TrainConfig(
        data=[f"staves:{staves_config(tmp_path)}"], alphabet=str(tmp_path / "vocabulary.txt"), kind="score", height=64,
        max_width=600, arch="crnn_compact", hidden_size=16, batch_size=2, max_steps=3, num_workers=0,
        out_dir=str(tmp_path / "run"), progress=False, log_every=1, val_every=1000, save_every=1000, seed=3,
    ))
    assert result.step == 3
    assert "6 staves per epoch engraved in the loader" in capsys.readouterr().out


def test_train_cli_reports_a_bad_staves_config_in_one_line(tmp_path, capsys):
    tool = load_script("train_tool", ROOT / "tools" / "train.py")
    (tmp_path / "staves.json").write_text('{"labels": "labels_lmdb", "fonts": ["Arial"]}')
    with pytest.raises(SystemExit) as exit_info:
        run_cli(tool.main, ["--data", f"staves:{tmp_path / 'staves.json'}", "--kind", "score", "--max-steps", "1",
                            "--workers", "0", "--out", str(tmp_path / "o"), "--no-progress"], prog="train.py")
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"train.py: error: staves:{tmp_path / 'staves.json'}: 'fonts' must be a list of Verovio fonts"), err
