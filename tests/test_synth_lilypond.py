"""The LilyPond staff engraver (crnn_ocr.synth.lilypond): LilyPond source written from tokens,
the agreement check, and (where Debian's lilypond is installed) real engravings."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from crnn_ocr.synth import lilypond
from crnn_ocr.synth.lilypond import (
    LilyOptions,
    LilyPondMissing,
    check_agreement,
    engrave_batch,
    engrave_many,
    expected_symbols,
    finish_image,
    lilypond_music,
    parse_report,
)

needs_lilypond = pytest.mark.skipif(shutil.which("lilypond") is None,
                                    reason="Debian's lilypond is not installed (apt-get install lilypond)")
TUNE = "clef-G2 keySignature-DM timeSignature-6/8 note-F#4_eighth note-A4_quarter barline multirest-3 barline".split()


# ------------------------------------------------------------------------------ source
def test_music_draws_exactly_the_tokens():
    # a pickup bar, a multirest of full 6/8 bars, accidentals against key and bar, a tie into the
    # next bar without an accidental, a time change inside a bar, a grace note before a barline
    tokens = ("clef-G2 keySignature-DM timeSignature-6/8 note-F#4_eighth note-A4_quarter barline multirest-3 barline "
              "note-F4_eighth note-F4_eighth note-F#4_eighth note-C5_quarter. tie barline note-C5_quarter. "
              "timeSignature-C note-Bb4_whole_fermata gracenote-A4_eighth barline")
    assert lilypond_music(tokens, LilyOptions(slashed_grace=False)) == (
        "\\set Staff.forceClef = ##t \\clef \"treble\" \\key d \\major "
        "\\once \\override Staff.TimeSignature.style = #'numbered \\time 6/8 "
        "\\partial 1*3/8 fis'8 a'4 \\bar \"|\" "
        "\\set Timing.measureLength = #(ly:make-moment 3/4) R1*9/4 \\bar \"|\" "
        "\\set Timing.measureLength = #(ly:make-moment 3/4) f'!8 f'8 fis'!8 c''!4.~ \\bar \"|\" "
        "\\set Timing.measureLength = #(ly:make-moment 3/8) c''4. \\bar \"\" "
        "\\once \\override Staff.TimeSignature.style = #'C \\time 4/4 "
        "\\set Timing.measureLength = #(ly:make-moment 1/1) \\afterGrace 15/16 bes'!1\\fermata { a'8 } \\bar \"|\"")


def test_music_hides_what_the_label_does_not_set():
    assert lilypond_music("clef-F4 note-C3_half note-D3_half barline".split()) == (
        "\\once \\omit Staff.TimeSignature \\set Staff.forceClef = ##t \\clef \"bass\" "
        "\\set Timing.measureLength = #(ly:make-moment 1/1) c2 d2 \\bar \"|\"")


def test_music_rejects_what_it_cannot_draw_symbol_for_symbol():
    with pytest.raises(ValueError, match="unknown token"):
        lilypond_music(["clef-G2", "note-C4_quarter", "bogus"])
    with pytest.raises(ValueError, match="barline closes a bar with no duration"):
        lilypond_music("clef-G2 note-C4_quarter barline barline".split())


def test_options_random_is_deterministic_and_varied():
    a = [LilyOptions.random(np.random.default_rng([3, i])) for i in range(20)]
    b = [LilyOptions.random(np.random.default_rng([3, i])) for i in range(20)]
    assert a == b
    assert len({o.auto_beam for o in a}) == 2 and len({round(o.staff_size) for o in a}) > 5
    assert all(11 <= o.staff_size <= 26 for o in a)


# ------------------------------------------------------------------------------ agreement
def test_expected_symbols():
    order, counts = expected_symbols("clef-C1 keySignature-CM timeSignature-C/ multirest-23 barline note-C4_quarter "
                                     "tie note-C4_quarter_fermata gracenote-D4_eighth rest-eighth multirest-1".split())
    assert order == ["clef", "time", "multirest", "barline", "note", "note", "note", "rest", "multirest"]
    assert counts == {"tie": 1, "fermata": 1, "mmnumber": 1}


def test_check_agreement_reads_order_and_counts():
    tokens = "clef-G2 keySignature-DM note-D4_half tie barline note-D4_half".split()
    drawn = [("note", 9.0), ("clef", 0.8), ("key", 4.3), ("tie", 9.5), ("barline", 15.0), ("note", 17.0)]
    assert check_agreement(tokens, drawn) == []
    assert check_agreement(tokens, drawn, systems=2) == ["2 systems drawn, expected 1"]
    moved = [("note", 9.0), ("clef", 0.8), ("key", 4.3), ("tie", 9.5), ("barline", 18.0), ("note", 17.0)]
    assert check_agreement(tokens, moved) == ["drawn left to right: clef key note note barline; label: clef key note barline note"]
    assert check_agreement(tokens, drawn[:3] + drawn[4:]) == ["0 tie drawn, label has 1"]


def test_parse_report():
    out = "noise\n@system 00000\n@grob 00000 NoteHead 3.5\n@grob 00000 Stem 3.5\n@grob 00001 BarLine 2\n@grob 00001 Tie +inf.0\n"
    assert parse_report(out) == {"00000": (1, [("note", 3.5)]), "00001": (0, [("barline", 2.0)])}


def test_finish_image_crops_pads_and_resizes():
    page = np.full((100, 300), 255, np.uint8)
    page[40:60, 100:200] = 0  # ink 20 x 100
    opts = LilyOptions(margin_top=0.5, margin_bottom=0.5, margin_left=0.0, margin_right=1.0)
    img = finish_image(page, 20, opts)  # padded to 40 x 120, then halved
    assert img.shape == (20, 60) and img.dtype == np.uint8
    assert img[:5].min() == 255 and img[15:].min() == 255 and img[8:12, :40].max() == 0 and img[:, 55:].min() == 255
    with pytest.raises(ValueError, match="blank"):
        finish_image(np.full((10, 10), 255, np.uint8), 20, opts)


def test_missing_lilypond_is_an_error_not_a_failed_staff(monkeypatch):
    monkeypatch.setattr(lilypond.shutil, "which", lambda name: None)
    with pytest.raises(LilyPondMissing, match="apt-get install lilypond"):
        engrave_many([TUNE], [LilyOptions()], 64)


def test_import_is_torch_free():
    code = "import sys, crnn_ocr.synth.lilypond; print(sorted(m for m in ('torch', 'cairosvg', 'music21') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "[]", r.stderr


# ------------------------------------------------------------------------------ engraving
@needs_lilypond
def test_engrave_many_in_one_lilypond_call(monkeypatch):
    calls = []
    real_run = subprocess.run

    def counting_run(cmd, *args, **kwargs):
        calls.append(cmd[0])
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(lilypond.subprocess, "run", counting_run)
    sequences = [
        TUNE,
        "clef-F4 keySignature-BbM timeSignature-C/ note-C3_half._fermata rest-quarter barline clef-C3 note-C4_whole barline".split(),
        "clef-G2 keySignature-AM timeSignature-3/4 gracenote-E5_eighth note-D5_quarter note-C#5_eighth tie "
        "note-C#5_eighth note-C5_quarter barline".split(),
        ["clef-G2", "note-C4_quarter", "bogus"],
        TUNE,
    ]
    rng = np.random.default_rng(0)
    options = [LilyOptions.random(rng) for _ in range(4)]
    options.append(options[0])
    results = engrave_batch(sequences, options, 48)
    assert len(calls) == 1  # one lilypond process; the bad sequence never reached it
    bad = results[3]
    assert bad.image is None and not bad.disagrees and "unknown token" in bad.problems[0]
    for r in results[:3] + results[4:]:
        assert r.problems == () and r.image is not None
        assert r.image.dtype == np.uint8 and r.image.ndim == 2 and r.image.shape[0] == 48
        assert r.image.shape[1] > 2 * 48  # a staff is wide
        assert r.image.max() == 255 and r.image.min() < 64  # black ink on white
    assert np.array_equal(results[0].image, results[4].image)  # same tokens and options, same image
    again = engrave_many([TUNE], [options[0]], 48)[0]  # and in another lilypond process
    assert again is not None and np.array_equal(again, results[0].image)
