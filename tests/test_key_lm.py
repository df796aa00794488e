"""The key-signature and bar prior for score readings (crnn_ocr.music.key_lm)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from crnn_ocr.alphabet import Alphabet
from crnn_ocr.decoding.decoder import CTCDecoder
from crnn_ocr.music import primus_vocabulary_file
from crnn_ocr.music.key_lm import KeyAccidentalLM


def _context(lm: KeyAccidentalLM, tokens: str) -> tuple[str, ...]:
    ctx = lm.initial_context()
    for t in tokens.split():
        ctx = lm.next_context(ctx, t)
    return ctx


def test_the_expected_alteration_follows_the_key_and_the_bar():
    lm = KeyAccidentalLM(0.9)
    ctx = _context(lm, "clef-G2 keySignature-DM timeSignature-3/4")
    assert ctx == ("DM",)
    assert [lm.expected(ctx, s, 4) for s in "CDEFGAB"] == [1, 0, 0, 1, 0, 0, 0]  # D major: F# and C#
    ctx = _context(lm, "clef-G2 keySignature-DM note-F4_quarter note-Bb4_eighth rest-eighth")
    assert ctx == ("DM", "B4=-1", "F4=0")  # a natural and a flat written in the bar
    assert (lm.expected(ctx, "F", 4), lm.expected(ctx, "F", 5), lm.expected(ctx, "B", 4)) == (0, 1, -1)  # per octave
    assert _context(lm, "keySignature-DM note-F4_quarter barline") == ("DM",)  # a barline clears the bar
    assert _context(lm, "keySignature-DM note-F4_quarter keySignature-BbM") == ("BbM",)
    assert lm.initial_context() == ("CM",) and lm.end_log_prob(ctx) == 0.0


def test_log_probs_favour_the_expected_alteration_of_notes_only():
    lm = KeyAccidentalLM(0.9)
    symbols = ["note-F#4_quarter", "note-F4_quarter", "note-Fb4_quarter", "gracenote-C#5_eighth", "rest-quarter", "barline"]
    lp = lm.log_probs(("DM",), symbols)
    hit, miss = math.log(0.9), math.log(0.1 / 4)
    np.testing.assert_allclose(lp, [hit, miss, miss, hit, 0.0, 0.0])
    np.testing.assert_allclose(lm.log_probs(("DM", "F4=0"), symbols), [miss, hit, miss, hit, 0.0, 0.0])
    with pytest.raises(ValueError, match="p_expected"):
        KeyAccidentalLM(1.0)


def test_train_counts_the_share_of_expected_alterations():
    labels = ["clef-G2 keySignature-GM note-F#4_quarter note-F#4_quarter note-F4_quarter note-F4_quarter barline note-F#5_half",
              "clef-G2 keySignature-CM note-C4_whole"]
    # expected: F#4 yes, F#4 yes, F4 no (a natural), F4 yes (the bar's natural), F#5 yes, C4 yes: 5 of 6
    assert KeyAccidentalLM.train(labels, smoothing=0).p_expected == pytest.approx(5 / 6)
    assert KeyAccidentalLM.train(labels).p_expected == pytest.approx(6 / 8)
    with pytest.raises(ValueError, match="no notes"):
        KeyAccidentalLM.train(["clef-G2 barline"])


def test_the_beam_search_reads_the_key_signatures_alteration_where_the_model_hesitates():
    alphabet = Alphabet.from_file(primus_vocabulary_file())
    tokens = ["clef-G2", "keySignature-DM", "note-F#4_quarter", "note-F4_quarter"]
    ids = [alphabet.id_of(t) for t in tokens]
    # frames: clef, key, then a note the model reads F4 (natural) at 0.55 and F#4 at 0.4;
    # then, in the next bar, a note it reads F4 at 0.97 and F#4 at 0.001 (a clearly drawn natural)
    frames = [(ids[0], {}), (ids[1], {}), (ids[3], {ids[2]: 0.4}), (alphabet.id_of("barline"), {}), (ids[3], {ids[2]: 0.001})]
    lp = np.full((2 * len(frames), alphabet.num_classes), 1e-6)
    for k, (top, others) in enumerate(frames):
        lp[2 * k, top] = 1.0 - sum(others.values()) - 0.03
        for c, p in others.items():
            lp[2 * k, c] = p
        lp[2 * k + 1, 0] = 1.0  # a blank between symbols
    lp = np.log(lp / lp.sum(1, keepdims=True))
    plain = CTCDecoder(alphabet, beam_width=10).decode(lp).text
    keyed = CTCDecoder(alphabet, beam_width=10, lm=KeyAccidentalLM(0.97), alpha=1.0).decode(lp).text
    assert plain == "clef-G2 keySignature-DM note-F4_quarter barline note-F4_quarter"
    assert keyed == "clef-G2 keySignature-DM note-F#4_quarter barline note-F4_quarter"
