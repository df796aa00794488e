"""Music scores: the semantic encoding, MEI engraving, music21 conversion, the staff generator,
the PrIMuS converter and infer.py on a score checkpoint."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import ROOT, png_bytes, require_engraving
from crnn_ocr.alphabet import Alphabet
from crnn_ocr.data import LmdbDataset, iter_lmdb_samples
from crnn_ocr.frontend import ImageFrontend
from crnn_ocr.music import (
    InvalidSequence,
    MeiOptions,
    Symbol,
    TokenIssue,
    count_symbols,
    parse_token,
    semantic_to_mei,
    validate_semantic,
)

ENV = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "OMP_NUM_THREADS": "1"}
PRIMUS_EXAMPLE = Path("/work/shared/data/music/primus_example")
# the real PrIMuS sample's semantic label (000051652-1_2_1)
SAMPLE = ("clef-C1 keySignature-EbM timeSignature-2/4 multirest-23 barline rest-quarter rest-eighth note-Bb4_eighth "
          "barline note-Bb4_quarter. note-G4_eighth barline note-Eb5_quarter. note-D5_eighth barline note-C5_eighth "
          "note-C5_eighth rest-quarter barline")


def _music21():
    return pytest.importorskip("music21")


def run_tool(path: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(path), *map(str, args)], capture_output=True, text=True, env=ENV,
                          timeout=300)


# ------------------------------------------------------------------------------ tokens
def test_parse_token_fields():
    assert parse_token("note-Bb4_quarter._fermata") == Symbol(
        "note", "note-Bb4_quarter._fermata", pitch="Bb4", duration="quarter", dots=1, fermata=True)
    assert parse_token("note-Bb4_quarter._fermata").quarter_length == Fraction(3, 2)
    assert parse_token("note-F##5_eighth..").quarter_length == Fraction(7, 8)
    assert parse_token("gracenote-C#5_sixteenth") == Symbol(
        "gracenote", "gracenote-C#5_sixteenth", pitch="C#5", duration="sixteenth")
    assert parse_token("gracenote-C#5_sixteenth").quarter_length == 0
    assert parse_token("rest-whole_fermata") == Symbol("rest", "rest-whole_fermata", duration="whole", fermata=True)
    assert parse_token("rest-thirty_second").quarter_length == Fraction(1, 8)
    assert parse_token("clef-C1") == Symbol("clef", "clef-C1", value="C1")
    assert parse_token("keySignature-F#M").value == "F#M"
    assert parse_token("timeSignature-C/").value == "C/"
    assert parse_token("multirest-23") == Symbol("multirest", "multirest-23", value="23")
    assert parse_token("barline") == Symbol("barline", "barline")


@pytest.mark.parametrize("token, message", [
    ("note-H4_quarter", "malformed pitch 'H4' (expected a step A-G, an optional #, ##, b or bb, an octave digit)"),
    ("note-C4_crotchet", "unknown duration 'crotchet' (one of quadruple_whole, double_whole, whole, half, quarter, "
                         "eighth, sixteenth, thirty_second, sixty_fourth, hundred_twenty_eighth)"),
    ("gracenote-C4_eighth_fermata", "grace notes take no fermata"),
    ("clef-G3", "unknown clef 'G3' (one of C1, C2, C3, C4, C5, F3, F4, F5, G1, G2)"),
    ("keySignature-Am", "unknown key signature 'Am' (a major key such as DM, BbM, F#M)"),
    ("timeSignature-3-4", "malformed time signature '3-4' (n/d, C or C/)"),
    ("multirest-0", "multirest needs a positive number of bars, got '0'"),
    ("slur", "unknown token (expected clef-, keySignature-, timeSignature-, note-, gracenote-, rest-, multirest-, "
             "barline or tie)"),
    ("dynamic-ff", "unknown token kind 'dynamic'"),
])
def test_malformed_tokens_are_named(token, message):
    with pytest.raises(ValueError) as e:
        parse_token(token)
    assert str(e.value) == message
    assert validate_semantic(["clef-G2", token]) == [TokenIssue(1, token, message)]


def test_validate_accepts_the_primus_sample_and_reports_music_errors():
    assert validate_semantic(SAMPLE) == []
    assert validate_semantic("clef-G2\tnote-C4_half\ttie\tbarline\tnote-C4_quarter\t") == []  # tabs, tie over a bar
    bad = ("note-C4_quarter clef-G2 note-D4_quarter tie note-E4_quarter barline rest-half tie note-F4_quarter "
           "barline note-G4_quarter multirest-2 barline note-X9_quarter")
    assert [str(i) for i in validate_semantic(bad)] == [
        "token 0 'note-C4_quarter': note before any clef",
        "token 3 'tie': tie joins different pitches D4 and E4",
        "token 7 'tie': tie does not follow a note",
        "token 11 'multirest-2': multirest must stand alone in its bar",
        "token 13 'note-X9_quarter': malformed pitch 'X9' (expected a step A-G, an optional #, ##, b or bb, an octave digit)",
    ]
    assert [str(i) for i in validate_semantic("")] == ["empty sequence: no tokens"]
    assert [str(i) for i in validate_semantic("clef-G2 note-C4_quarter tie")] == ["token 2 'tie': tie is not followed by a note"]
    # an enharmonic tie is the same pitch
    assert validate_semantic("clef-G2 note-C#4_half tie note-Db4_quarter") == []


def test_count_symbols():
    assert count_symbols(SAMPLE) == {"note": 7, "rest": 3, "multirest": 1, "barline": 5}
    assert count_symbols("clef-G2 gracenote-C5_eighth note-B4_quarter tie note-B4_eighth") == {
        "note": 3, "rest": 0, "multirest": 0, "barline": 0}


# ------------------------------------------------------------------------------ MEI
def test_mei_accidentals_beams_ties_and_measures():
    mei = semantic_to_mei("clef-G2 keySignature-EbM timeSignature-2/4 note-Bb4_eighth note-B4_eighth note-B4_eighth "
                          "note-Bb4_eighth barline note-E5_quarter tie note-E5_eighth gracenote-F5_eighth note-D5_eighth")
    measures = [line for line in mei.splitlines() if line.startswith("<measure")]
    assert len(measures) == 2
    assert 'right="single"' in measures[0] and 'right="invis"' in measures[1]
    first = measures[0]
    # Bb is in the key (gestural flat); the first B natural is written, the second inherits it;
    # the last Bb needs its flat written again in this measure
    assert first.count('accid.ges="f"') == 1 and first.count('accid="n"') == 1 and first.count('accid="f"') == 1
    assert first.count("<beam") == 2  # two beats of two eighths each
    second = measures[1]
    # E5 (Eb in the key) is written natural; its tied continuation carries no written accidental
    assert second.count('accid="n"') == 1 and 'tie="i"' in second and 'tie="t"' in second
    assert 'grace="acc"' in second and "<beam" not in second
    assert 'key.sig="3f"' in mei and 'meter.count="2" meter.unit="4"' in mei and 'clef.shape="G" clef.line="2"' in mei
    unbeamed = semantic_to_mei("clef-G2 note-C5_eighth note-D5_eighth", MeiOptions(beams=False, grace="unacc"))
    assert "<beam" not in unbeamed
    with pytest.raises(InvalidSequence, match="note before any clef"):
        semantic_to_mei("note-C5_eighth")


def test_mei_renders_with_verovio_and_counts_agree():
    require_engraving()
    import crnn_ocr.synth.music as synth

    engraver = synth.Engraver()
    engraving = synth.Engraving.random(np.random.default_rng(0), ["Leipzig"])
    svg = engraver.svg(SAMPLE.split(), engraving)
    assert synth.svg_counts(svg) == {"note": 7, "rest": 3, "multirest": 1, "barline": 5, "system": 1}
    assert synth.check_agreement(SAMPLE.split(), svg) == []
    # a label with one more note than the engraving is caught
    assert synth.check_agreement(SAMPLE.split() + ["note-C5_quarter"], svg) == ["7 notes drawn, label has 8"]
    img = synth.rasterize(svg, 64)
    assert img.shape[0] == 64 and img.dtype == np.uint8 and img.shape[1] > 3 * 64
    assert img.min() < 60 and np.median(img) > 200  # dark ink on white paper


# ------------------------------------------------------------------------------ music21
def test_semantic_to_musicxml_round_trip(tmp_path):
    music21 = _music21()
    from crnn_ocr.music import stream_to_semantic, write_score

    tokens = ("clef-G2 keySignature-DM timeSignature-3/4 note-F#4_quarter. note-A4_eighth note-D5_quarter_fermata "
              "barline note-C5_half tie note-C5_eighth gracenote-D5_sixteenth note-B4_eighth barline rest-half. barline")
    xml, mid = tmp_path / "out.musicxml", tmp_path / "out.mid"
    write_score(tokens, musicxml=xml, midi=mid)
    assert mid.read_bytes()[:4] == b"MThd"
    parsed = music21.converter.parse(str(xml))
    notes = list(parsed.flatten().notes)
    assert [n.pitch.nameWithOctave for n in notes] == ["F#4", "A4", "D5", "C5", "C5", "D5", "B4"]
    assert [float(n.quarterLength) for n in notes if not n.duration.isGrace] == [1.5, 0.5, 1.0, 2.0, 0.5, 0.5]
    assert stream_to_semantic(parsed) == tokens.split()


def test_multirest_becomes_whole_bar_rests():
    _music21()
    from crnn_ocr.music import semantic_to_stream

    score = semantic_to_stream(SAMPLE)
    part = score.parts[0]
    measures = list(part.getElementsByClass("Measure"))
    assert len(measures) == 23 + 4
    assert all(float(m.notesAndRests[0].quarterLength) == 2.0 for m in measures[:23])
    with pytest.raises(InvalidSequence) as e:
        semantic_to_stream("clef-G2 note-C4_quarter tie note-D4_quarter")
    assert [str(i) for i in e.value.issues] == ["token 2 'tie': tie joins different pitches C4 and D4"]


ABC = """X:1
T:test
M:3/4
L:1/8
K:D
(FA) d2 f2- | f2 {g}e2 z2 | [ce]4 =c2 | d6 |]
"""


def test_stream_to_semantic_from_abc_drops_slurs_and_rejects_chords():
    music21 = _music21()
    from crnn_ocr.music import UnsupportedMusic, excerpt_tokens, measure_tokens, stream_to_semantic

    parsed = music21.converter.parse(ABC, format="abc")
    measures = measure_tokens(parsed)
    assert [m.tokens for m in measures] == [
        ("clef-G2", "keySignature-DM", "timeSignature-3/4", "note-F#4_eighth", "note-A4_eighth", "note-D5_quarter",
         "note-F#5_quarter", "tie"),
        ("note-F#5_quarter", "gracenote-G5_eighth", "note-E5_quarter", "rest-quarter"),
        None,
        ("note-D5_half.",),
    ]
    assert measures[2].problem == "chord or unpitched note"
    # an excerpt from a later measure starts with the clef, key and time in force; a tie whose end is cut off goes
    assert excerpt_tokens(measures, 1, 1) == ["clef-G2", "keySignature-DM", "timeSignature-3/4", "note-F#5_quarter",
                                             "gracenote-G5_eighth", "note-E5_quarter", "rest-quarter", "barline"]
    assert stream_to_semantic(parsed, max_measures=1)[-2:] == ["note-F#5_quarter", "barline"]
    assert "tie" in stream_to_semantic(parsed, max_measures=2)
    with pytest.raises(UnsupportedMusic, match="chord"):
        stream_to_semantic(parsed)


# ------------------------------------------------------------------------------ generator
@pytest.fixture(scope="module")
def synth():
    require_engraving()
    _music21()
    import crnn_ocr.synth.music as synth_music

    return synth_music


def test_random_melodies_are_valid_and_fit_the_measure(synth):
    cfg = synth.SynthMusicConfig(out="")
    for seed in range(300):
        tokens = synth.random_melody(np.random.default_rng(seed), cfg)
        assert validate_semantic(tokens) == [], (seed, tokens)
        assert len(tokens) <= cfg.max_tokens and tokens[-1] == "barline"
        n, d = map(int, tokens[2].split("-")[1].replace("C/", "2/2").replace("C", "4/4").split("/"))
        bars, length = [], Fraction(0)
        for t in tokens[3:]:
            if t == "barline":
                bars.append(length)
                length = Fraction(0)
            elif t.startswith("multirest-"):
                length = Fraction(4 * n, d)
            else:
                length += parse_token(t).quarter_length
        assert all(b == Fraction(4 * n, d) for b in bars[1:]), (seed, tokens)  # only a pickup may be short


def test_random_melodies_stay_inside_the_primus_vocabulary(synth):
    from crnn_ocr.music import primus_vocabulary

    vocab = frozenset(primus_vocabulary())
    cfg = synth.SynthMusicConfig(out="")
    for seed in range(300):
        tokens = synth.random_melody(np.random.default_rng(seed), cfg, vocab)
        assert [t for t in tokens if t not in vocab] == [], seed
        assert validate_semantic(tokens) == [], (seed, tokens)
    # without a vocabulary the generator draws values PrIMuS never saw (e.g. a double whole rest)
    drawn = {t for seed in range(300) for t in synth.random_melody(np.random.default_rng(seed), cfg)}
    assert drawn - vocab
    with pytest.raises(ValueError, match="outside the vocabulary"):
        synth.random_melody(np.random.default_rng(0), cfg, frozenset({"clef-G2", "barline"}))


def test_primus_vocabulary_is_the_one_fixed_label_set(tmp_path):
    import crnn_ocr.synth.music as synth
    from crnn_ocr.music import primus_vocabulary, primus_vocabulary_file

    vocab = primus_vocabulary()
    assert len(vocab) == len(set(vocab)) == 1781 and vocab[:2] == ("barline", "clef-C1")
    assert tuple(Alphabet.from_file(primus_vocabulary_file()).symbols) == vocab
    if PRIMUS_EXAMPLE.is_dir():
        assert (PRIMUS_EXAMPLE / "Data" / "vocabulary_semantic.txt").read_text().split() == list(vocab)
    assert synth.load_vocabulary(None) == vocab
    bad = tmp_path / "v.txt"
    bad.write_text("barline\nnote-H4_quarter\n")
    with pytest.raises(ValueError, match=r"v.txt: 'note-H4_quarter' is not a semantic token"):
        synth.load_vocabulary(str(bad))
    with pytest.raises(ValueError, match="cannot read the vocabulary"):
        synth.load_vocabulary(str(tmp_path / "nope.txt"))


def test_pieces_give_excerpts_from_every_part(synth):
    pieces = synth.load_corpus_tunes(("bach",))
    assert len(pieces) > 300 and all(p.path is not None and p.tune_id.startswith("bach/") for p in pieces)
    parts = synth.parse_tune(next(p for p in pieces if p.tune_id == "bach/bwv10.7.mxl"))
    assert len(parts) == 4
    assert [m.tokens[0] for m in (part[0] for part in parts)] == ["clef-G2", "clef-G2", "clef-F4", "clef-F4"]


def test_move_to_clef_shifts_octaves():
    import crnn_ocr.synth.music as synth

    tokens = "clef-G2 keySignature-GM note-B4_quarter gracenote-C5_eighth note-D5_half barline".split()
    assert synth.move_to_clef(tokens, "F4") == (
        "clef-F4 keySignature-GM note-B2_quarter gracenote-C3_eighth note-D3_half barline".split())
    assert synth.move_to_clef(tokens, "G1") == ["clef-G1", *tokens[1:]]


def test_move_to_key_keeps_lines_spaces_and_printed_accidentals():
    import crnn_ocr.synth.music as synth

    tokens = ("clef-G2 keySignature-GM note-F5_quarter note-F#4_eighth note-F4_eighth tie note-F4_eighth barline "
              "note-F#5_half note-Bb4_quarter note-B4_quarter").split()
    # F#4 took its sharp from G major: natural in B-flat major; F5 (a printed natural), the F4 after
    # F#4 in its bar (a printed natural) and the tie after it keep theirs; B4 after Bb4 in a bar is a
    # printed natural; F#5 in the next bar follows the key
    assert synth.move_to_key(tokens, -2) == (
        "clef-G2 keySignature-BbM note-F5_quarter note-F4_eighth note-F4_eighth tie note-F4_eighth barline "
        "note-F5_half note-Bb4_quarter note-B4_quarter").split()
    assert synth.move_to_key(tokens, 1) == tokens
    assert synth.move_to_key(["clef-G2", "note-B4_quarter"], 3) == ["clef-G2", "note-B4_quarter"]  # no key: C major


@pytest.fixture(scope="module")
def generated(synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("music") / "data"
    cfg = synth.SynthMusicConfig(out=str(out), count=14, seed=5, height=64, val_fraction=0.3, excerpts_per_tune=2,
                                 collections=("essenFolksong",))
    stats = synth.generate(cfg)
    return out, stats, synth


def test_generator_writes_lmdbs_whose_labels_match_the_engraving(generated):
    out, stats, synth = generated
    written = stats.written["train"] + stats.written["val"]
    assert written == (14 - stats.unsupported_excerpts - stats.outside_vocabulary - stats.render_failures
                       - stats.agreement_failures)
    assert stats.corpus > 0 and stats.random > 0 and stats.written["train"] > 0
    vocab = Alphabet.from_file(out / "vocabulary.txt")
    assert vocab.is_tokenized and len(vocab.symbols) == 1781  # PrIMuS's whole vocabulary, whatever was drawn
    engraver = synth.Engraver()
    seen = 0
    for split in ("train", "val"):
        ds = LmdbDataset(out / split, vocab, ImageFrontend(height=64))
        assert len(ds) == stats.written[split] and ds.summary() == f"skipped 0 of {stats.written[split]}"
        for _, _, label in iter_lmdb_samples(out / split):
            tokens = label.split(" ")
            assert validate_semantic(tokens) == [] and tokens[0].startswith("clef-")
            svg = engraver.svg(tokens, synth.Engraving.random(np.random.default_rng(seen), ["Bravura"]))
            assert synth.check_agreement(tokens, svg) == []
            seen += 1
    assert seen == written
    info = json.loads((out / "stats.json").read_text())
    assert info["stats"]["written"] == stats.written


def test_split_is_by_tune(generated):
    out, stats, synth = generated
    tunes = synth.load_corpus_tunes(("essenFolksong",))
    assert len(tunes) > 1000 and len({t.tune_id for t in tunes}) == len(tunes)
    val = [t for t in tunes if synth.is_val(t.tune_id, 0.1)]
    assert 0.07 < len(val) / len(tunes) < 0.13
    assert synth.is_val(tunes[0].tune_id, 0.1) == synth.is_val(tunes[0].tune_id, 0.1)
    cfg = synth.SynthMusicConfig(out="", count=8, seed=5, val_fraction=0.3, excerpts_per_tune=2,
                                 collections=("essenFolksong",))
    samples = list(synth.iter_samples(cfg))
    for s in samples:
        assert s.split == ("val" if synth.is_val(s.item_id, 0.3) else "train")
    # deterministic given the seed
    again = list(synth.iter_samples(cfg))
    assert [(s.label, s.image) for s in samples] == [(s.label, s.image) for s in again]
    # --splits val engraves the held-out side only, the same samples as a full run
    val_only = list(synth.iter_samples(dataclasses.replace(cfg, splits=("val",))))
    assert [(s.index, s.image) for s in val_only] == [(s.index, s.image) for s in samples if s.split == "val"]
    assert val_only


def test_generator_cli_errors(tmp_path):
    r = run_tool(ROOT / "datasets" / "synth_music.py", "--out", tmp_path / "x", "--count", 0)
    assert r.returncode == 2 and r.stderr.strip() == "synth_music.py: error: --count must be at least 1, got 0"


# ------------------------------------------------------------------------------ PrIMuS
def _primus_tree(root: Path) -> None:
    import cv2

    img = png_bytes(np.full((40, 120), 255, np.uint8))
    for name, label, image in [
        ("000000001-1_1_1", "clef-G2\tnote-C5_quarter\tbarline\t", img),
        ("000000002-1_1_1", "clef-F4\trest-half\tbarline\t", b"not a png"),  # corrupt
        ("000000003-1_1_1", "clef-C1\tnote-D4_eighth\t", None),  # image missing
        ("000000004-1_1_1", "", img),  # empty label
        ("000000005-1_1_1", None, img),  # no label file
    ]:
        d = root / "package_aa" / name
        d.mkdir(parents=True)
        if label is not None:
            (d / f"{name}.semantic").write_text(label)
            (d / f"{name}.agnostic").write_text("clef.G-L2\tnote.quarter-S4\t")
        if image is not None:
            (d / f"{name}.png").write_bytes(image)
    cv2.imwrite(str(root / "package_aa" / "000000001-1_1_1" / "000000001-1_1_1_distorted.jpg"),
                np.full((40, 120), 200, np.uint8))


def test_primus_converter_counts_skips(tmp_path):
    from crnn_ocr.music.primus import create_lmdb_from_primus

    _primus_tree(tmp_path / "primus")
    stats = create_lmdb_from_primus(tmp_path / "sem", tmp_path / "primus")
    pkg = tmp_path / "primus" / "package_aa"
    first = ", ".join(f"{pkg / n / n}.png ({why})" for n, why in [
        ("000000002-1_1_1", "undecodable image"), ("000000003-1_1_1", "missing file"), ("000000004-1_1_1", "empty label")])
    assert stats.summary() == (f"wrote 1 samples to {tmp_path / 'sem'} (skipped 3: 1 undecodable image, 1 missing file, "
                               f"1 empty label; first: {first}); 1 images without a label file skipped")
    assert [label for _, _, label in iter_lmdb_samples(tmp_path / "sem")] == ["clef-G2 note-C5_quarter barline"]
    stats = create_lmdb_from_primus(tmp_path / "agn", tmp_path / "primus", encoding="agnostic", distorted=True)
    assert stats.written == 1 and [label for _, _, label in iter_lmdb_samples(tmp_path / "agn")] == [
        "clef.G-L2 note.quarter-S4"]
    r = run_tool(ROOT / "tools" / "primus_to_lmdb.py", "--primus", tmp_path / "nope", "--out", tmp_path / "o")
    assert r.returncode == 2 and r.stderr.strip() == f"primus_to_lmdb: error: {tmp_path / 'nope'}: PrIMuS folder not found (--primus)"


@pytest.mark.skipif(not PRIMUS_EXAMPLE.is_dir(), reason="the real PrIMuS sample is not on this machine")
def test_primus_converter_on_the_real_sample(tmp_path):
    src = tmp_path / "primus"
    shutil.copytree(PRIMUS_EXAMPLE / "Data", src)
    r = run_tool(ROOT / "tools" / "primus_to_lmdb.py", "--primus", src, "--out", tmp_path / "lmdb")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"wrote 1 samples to {tmp_path / 'lmdb'}"
    (_, image, label), = iter_lmdb_samples(tmp_path / "lmdb")
    assert label == SAMPLE and validate_semantic(label) == []
    vocab = Alphabet.from_file(src / "vocabulary_semantic.txt")
    assert len(vocab.symbols) == 1781 and vocab.try_encode(label) is not None
    ds = LmdbDataset(tmp_path / "lmdb", vocab, ImageFrontend(height=64))
    assert ds[0]["image"].shape[:2] == (1, 64)


# ------------------------------------------------------------------------------ infer.py
@pytest.fixture(scope="module")
def score_checkpoint(generated, tmp_path_factory):
    """Two training steps of a score model on the generated data."""
    import torch

    from crnn_ocr.engine import TrainConfig, train

    torch.set_num_threads(1)
    out, _, _ = generated
    run = tmp_path_factory.mktemp("score_run")
    train(TrainConfig(data=[str(out / "train")], alphabet=str(out / "vocabulary.txt"), kind="score", height=64,
                      max_width=1200, batch_size=4, max_steps=2, num_workers=0, out_dir=str(run), progress=False))
    return run / "last.pt", Alphabet.from_file(out / "vocabulary.txt")


def _forced_checkpoint(src: Path, dst: Path, alphabet: Alphabet, token: str) -> Path:
    """The checkpoint with its output layer rewired to emit ``token`` at every frame."""
    import torch

    state = torch.load(src, map_location="cpu", weights_only=False)
    weights = state["model"]
    key = [k for k in weights if k.endswith("linear.bias") and weights[k].shape[0] == alphabet.num_classes][-1]
    weights[key.replace("bias", "weight")].zero_()
    weights[key].fill_(-10.0)
    weights[key][alphabet.id_of(token)] = 10.0
    torch.save(state, dst)
    return dst


def test_infer_score_writes_musicxml_or_reports_invalid_music(score_checkpoint, generated, tmp_path):
    ckpt, alphabet = score_checkpoint
    out, _, _ = generated
    (_, image, label), = list(iter_lmdb_samples(out / "train"))[:1]
    staff = tmp_path / "staff.png"
    staff.write_bytes(image)
    infer = ROOT / "tools" / "infer.py"

    r = run_tool(infer, "--image", staff, "--checkpoint", ckpt)  # the two-step model: some token sequence
    assert r.returncode == 0, r.stderr
    path, text, conf = r.stdout.rstrip("\n").split("\t")
    assert path == str(staff) and all(t in alphabet for t in text.split()) and 0 <= float(conf) <= 1

    valid = _forced_checkpoint(ckpt, tmp_path / "clef.pt", alphabet, "clef-G2")
    xml, mid = tmp_path / "read.musicxml", tmp_path / "read.mid"
    r = run_tool(infer, "--image", staff, "--checkpoint", valid, "--musicxml", xml, "--midi", mid)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\t")[1] == "clef-G2"
    assert xml.read_text().count("<clef>") == 1 and mid.read_bytes()[:4] == b"MThd"

    note = next(s for s in alphabet.symbols if s.startswith("note-"))
    invalid = _forced_checkpoint(ckpt, tmp_path / "note.pt", alphabet, note)
    r = run_tool(infer, "--image", staff, "--checkpoint", invalid, "--musicxml", tmp_path / "bad.musicxml")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.splitlines() == [f"infer.py: {staff}: the reading is not valid music, no score written:",
                                      f"  token 0 {note!r}: note before any clef"]
    assert not (tmp_path / "bad.musicxml").exists()

    r = run_tool(infer, "--image", staff, staff, "--checkpoint", valid, "--musicxml", xml)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "one --image" in r.stderr


# ------------------------------------------------------------------------------ error breakdown
def test_error_breakdown_names_each_edit_and_adds_up_to_the_edit_distance():
    import editdistance

    from crnn_ocr.music.errors import align, breakdown, pitchless, token_kind

    ref = "clef-C1 keySignature-EbM timeSignature-2/4 note-Bb4_quarter. note-G4_eighth barline rest-quarter barline".split()
    hyp = ("clef-G2 keySignature-EbM timeSignature-3/4 note-Bb4_quarter note-A4_eighth rest-half barline "
           "note-C5_eighth barline").split()
    # a rest read too many, and a note read where the rest was: named by the reference's kind
    assert breakdown(hyp, ref) == {"clef": 1, "time": 1, "duration": 1, "pitch": 1, "rest": 2}
    assert align(hyp, ref)[2:6] == [("timeSignature-3/4", "timeSignature-2/4"),
                                    ("note-Bb4_quarter", "note-Bb4_quarter."), ("note-A4_eighth", "note-G4_eighth"),
                                    ("rest-half", None)]
    assert sum(breakdown(hyp, ref).values()) == editdistance.eval(hyp, ref) == 6
    assert breakdown(ref, ref) == {}
    assert breakdown([], ref[:3]) == {"clef": 1, "key": 1, "time": 1}
    assert breakdown(["note-D5_half"], ["note-C5_quarter"]) == {"pitch+duration": 1}
    assert breakdown(["gracenote-D5_eighth", "tie"], ["gracenote-C5_eighth"]) == {"pitch": 1, "tie": 1}
    assert align(["a", "x", "c"], ["a", "b", "c"]) == [("a", "a"), ("x", "b"), ("c", "c")]
    assert [token_kind(t) for t in ("multirest-23", "tie", "foo-1", "barline")] == ["multirest", "tie", "unknown", "barline"]
    assert pitchless(["note-C#5_quarter._fermata", "gracenote-D4_eighth", "rest-half"]) == [
        "note_quarter._fermata", "gracenote_eighth", "rest-half"]
    rng = np.random.default_rng(0)
    vocab = ["note-C5_quarter", "note-D5_quarter", "note-C5_half", "rest-half", "barline", "clef-G2", "tie"]
    for _ in range(300):
        a = [vocab[k] for k in rng.integers(0, len(vocab), rng.integers(0, 9))]
        b = [vocab[k] for k in rng.integers(0, len(vocab), rng.integers(0, 9))]
        assert sum(breakdown(a, b).values()) == editdistance.eval(a, b)


def test_pitch_offsets_say_how_far_a_wrong_pitch_is():
    from crnn_ocr.music.errors import pitch_offset, pitch_offsets

    assert [pitch_offset(h, "note-F#4_quarter") for h in ("note-F4_quarter", "note-G4_quarter", "note-E#4_quarter",
                                                          "note-A4_quarter", "note-Bb4_quarter", "note-F#5_half",
                                                          "note-C5_quarter", "gracenote-D4_eighth")] == [
        "accidental", "step", "step", "2-3 steps", "2-3 steps", "octave", "other", "2-3 steps"]
    ref = "clef-C3 note-C4_quarter note-E4_eighth rest-half note-G4_half barline".split()
    hyp = "clef-C3 note-A3_quarter note-E4_quarter rest-half note-Gb4_whole barline note-B4_eighth".split()
    # C4 -> A3 (a third: the clef read as another), E4 read with another value (not a pitch error),
    # G4 -> Gb4 with another value (pitch+duration), B4 an extra note (not a pitch error)
    assert pitch_offsets(hyp, ref) == {"2-3 steps": 1, "accidental": 1}
    assert pitch_offsets(ref, ref) == {}


@pytest.mark.skipif(shutil.which("lilypond") is None, reason="Debian's lilypond is not installed")
def test_generator_engraves_a_share_with_lilypond(synth, tmp_path):
    cfg = synth.SynthMusicConfig(out=str(tmp_path / "m"), count=12, seed=3, height=48, lilypond=0.5, distort=0.0,
                                 collections=("essenFolksong",), excerpts_per_tune=2)
    stats = synth.generate(cfg)
    written = stats.written["train"] + stats.written["val"]
    assert 0 < stats.lilypond < written and stats.agreement_failures == stats.render_failures == 0
    samples = list(synth.iter_samples(cfg))
    assert [s.index for s in samples] == sorted(s.index for s in samples) and len(samples) == written
    for s in samples:
        img = cv2.imdecode(np.frombuffer(s.image, np.uint8), cv2.IMREAD_GRAYSCALE)
        assert img.shape[0] == 48 and validate_semantic(s.label) == []
    # the labels are those a Verovio-only run draws (the engraver is chosen after them)
    by_index = {s.index: s for s in samples}
    verovio_only = synth.SampleMaker(dataclasses.replace(cfg, lilypond=0.0), synth.load_corpus_tunes(("essenFolksong",)))
    lily = {j.index for j in map(synth.SampleMaker(cfg, synth.load_corpus_tunes(("essenFolksong",))).prepare, range(12))
            if j is not None and j.lily is not None}
    assert len(lily) == stats.lilypond
    assert all(by_index[i].label == verovio_only.make(i).label for i in by_index)
