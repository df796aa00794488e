"""Lexicon-based transcription: exact best word, edit-distance candidates, trie-constrained
beam search, and lexicon files with their errors."""

from __future__ import annotations

import math
import string

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crnn_ocr.alphabet import Alphabet
from crnn_ocr.decoding import CTCDecoder, Lexicon, batch_ctc_log_likelihood, ctc_log_likelihood, log_softmax

ALNUM = Alphabet.preset("alphanumeric")
LOWER_SPACE = Alphabet(string.ascii_lowercase + " ")


def emissions(path: str, alphabet: Alphabet = ALNUM, p: float = 0.9) -> np.ndarray:
    C = alphabet.num_classes
    lp = np.full((len(path), C), math.log((1 - p) / (C - 1)))
    for t, s in enumerate(path):
        lp[t, 0 if s == "-" else alphabet.id_of(s)] = math.log(p)
    return lp


def spell(word: str) -> str:
    """A best path for ``word``: each symbol twice, then a blank."""
    return "".join(c + c + "-" for c in word)


# ---------------------------------------------------------------------------------- building
def test_lexicon_from_file_folds_case_and_skips_blanks(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("Hello\r\n\n  world \nHELLO\nbug\n", encoding="utf-8")
    lex = Lexicon.build(path, ALNUM)
    assert lex.words == ["hello", "world", "bug"]
    assert "Hello" in lex and "nope" not in lex
    assert lex.ids[2] == tuple(ALNUM.encode("bug"))
    assert CTCDecoder(ALNUM, lexicon=str(path)).lexicon.words == lex.words


def test_lexicon_errors_name_word_and_line(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("good\nfine\nbad-word\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"words.txt:3: lexicon word 'bad-word': symbol '-' at position 3"):
        Lexicon.build(path, ALNUM)
    with pytest.raises(ValueError, match=r"lexicon entry 1: lexicon word 'é'"):
        CTCDecoder(ALNUM, lexicon=["ok", "é"])
    with pytest.raises(ValueError, match="lexicon is empty"):
        CTCDecoder(ALNUM, lexicon=[])
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n", encoding="utf-8")
    with pytest.raises(ValueError, match="lexicon is empty"):
        CTCDecoder(ALNUM, lexicon=empty)
    with pytest.raises(ValueError, match="cannot read lexicon"):
        CTCDecoder(ALNUM, lexicon=tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="not a string"):
        Lexicon.build(["ok", 3], ALNUM)  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("symbols", "words", "ok"),
    [
        ("שלוםע", ["שלום", "עולם"], True),  # right-to-left script
        ("abce\u0301", ["cafe\u0301"], False),  # 'f' missing
        ("acfe\u0301", ["cafe\u0301", "face"], True),  # combining accent as its own symbol
        ("ab😀", ["a😀b"], True),  # emoji
        ("ab", ["a😀b"], False),
        ("ab", ["caf\u00e9"], False),
    ],
)
def test_unicode_lexicons_decode_or_raise(symbols, words, ok):
    alphabet = Alphabet(symbols)
    if not ok:
        with pytest.raises(ValueError, match="not in the alphabet"):
            CTCDecoder(alphabet, lexicon=words)
        return
    word = words[0]
    lp = emissions(spell(word), alphabet, p=0.7)
    for mode in ("score", "candidates", "trie"):
        assert CTCDecoder(alphabet, beam_width=4, lexicon=words, lexicon_mode=mode).decode(lp).text == word


# ---------------------------------------------------------------------------------- modes
WORDS = ["hello", "help", "hell", "yellow", "world", "word", "bug", "bag", "big"]


def test_misread_word_is_corrected_in_every_mode():
    lp = emissions(spell("hcllo"), p=0.6)  # the model reads "hcllo"
    lp[3:5, ALNUM.id_of("e")] = math.log(0.3)  # but "e" is a close second
    lp = log_softmax(lp)
    assert CTCDecoder(ALNUM).decode(lp).text == "hcllo"
    for mode in ("score", "candidates", "trie"):
        res = CTCDecoder(ALNUM, beam_width=8, lexicon=WORDS, lexicon_mode=mode).decode(lp)
        assert res.text == "hello", mode
        assert res.score == pytest.approx(ctc_log_likelihood(lp, ALNUM.encode("hello")))
        assert len(res.spans) == 5


def test_score_mode_is_exact_argmax():
    rng = np.random.default_rng(0)
    for _ in range(10):
        lp = log_softmax(rng.normal(size=(12, ALNUM.num_classes)) * 3)
        res = CTCDecoder(ALNUM, lexicon=WORDS).decode(lp)
        scores = batch_ctc_log_likelihood(lp, [ALNUM.encode(w) for w in WORDS])
        assert res.score == pytest.approx(scores.max())
        assert res.text == WORDS[int(np.argmax(scores))]


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_words=st.integers(65, 400),
    n_sym=st.integers(2, 5),
    T=st.integers(1, 14),
    sharp=st.floats(0.5, 12.0),
    zeros=st.booleans(),
)
def test_best_word_with_upper_bound_pruning_is_exact(seed, n_words, n_sym, T, sharp, zeros):
    rng = np.random.default_rng(seed)
    alphabet = Alphabet("abcde"[:n_sym])
    words = ["".join(rng.choice(list(alphabet.symbols), size=int(rng.integers(1, 8)))) for _ in range(n_words)]
    lex = Lexicon.build(words, alphabet)
    x = rng.normal(size=(T, alphabet.num_classes)) * sharp
    if zeros:
        x[rng.random(x.shape) < 0.2] = -np.inf
        x[np.arange(T), rng.integers(0, alphabet.num_classes, T)] = 0.0
    lp = log_softmax(x)
    all_scores = batch_ctc_log_likelihood(lp, lex.ids)
    found = lex.best(lp, distances=rng.integers(0, 4, size=len(lex)))
    if np.isneginf(all_scores.max()):
        assert found is None
        return
    row, score = found
    assert score == pytest.approx(all_scores.max(), abs=1e-9)
    assert score == pytest.approx(all_scores[row], abs=1e-9)
    bonus = rng.normal(size=len(lex)) * 2
    row, score = lex.best(lp, bonus=bonus)
    assert score + bonus[row] == pytest.approx(np.max(all_scores + bonus), abs=1e-9)


def test_candidates_mode_and_fallback_to_nearest():
    lex_words = [f"{a}{b}{c}" for a in "abc" for b in "abc" for c in "abc"] * 1 + ["hello"]
    lp = emissions(spell("helo"), p=0.8)
    dec = CTCDecoder(ALNUM, lexicon=lex_words, lexicon_mode="candidates", max_edit_distance=1)
    assert dec.decode(lp).text == "hello"
    assert dec.lexicon.candidates(ALNUM.encode("helo"), 1).tolist() == [dec.lexicon.index(ALNUM.encode("hello"))]
    # Nothing within distance 0: the nearest words are rescored instead.
    dec0 = CTCDecoder(ALNUM, lexicon=lex_words, lexicon_mode="candidates", max_edit_distance=0)
    assert dec0.decode(lp).text == "hello"


def test_auto_mode_switches_on_lexicon_size():
    small = CTCDecoder(ALNUM, lexicon=WORDS)
    big = CTCDecoder(ALNUM, lexicon=[f"w{i}" for i in range(1500)])
    assert (small.lexicon_mode, big.lexicon_mode) == ("score", "candidates")
    assert big.decode(emissions(spell("w1234"), p=0.95)).text == "w1234"


def test_trie_mode_reads_word_sequences():
    lp = emissions(spell("hello world"), LOWER_SPACE, p=0.6)
    lp[:, LOWER_SPACE.id_of("o")] = np.maximum(lp[:, LOWER_SPACE.id_of("o")], math.log(0.2))  # noise
    lp = log_softmax(lp)
    dec = CTCDecoder(LOWER_SPACE, beam_width=16, lexicon=["hello", "world", "word"], lexicon_mode="trie")
    res = dec.decode(lp)
    assert res.text == "hello world"
    assert len(res.spans) == 11
    # Every output of the trie decoder is a sequence of lexicon words.
    rng = np.random.default_rng(1)
    for _ in range(20):
        noisy = log_softmax(rng.normal(size=(25, LOWER_SPACE.num_classes)) * 3)
        text = dec.decode(noisy).text
        assert text and all(w in {"hello", "world", "word"} for w in text.split(" ")) and "  " not in text


def test_trie_mode_without_space_gives_single_words_and_falls_back():
    dec = CTCDecoder(ALNUM, beam_width=4, lexicon=["abc", "abd", "xyz"], lexicon_mode="trie")
    assert dec.decode(emissions(spell("abd"))).text == "abd"
    # Two frames cannot hold any 3-letter word in the beam: the result says so.
    res = dec.decode(emissions("ab"))
    assert (res.text, res.score, res.confidence) == ("", -math.inf, 0.0)
    # Too short for every word: also empty, in score mode.
    assert CTCDecoder(ALNUM, lexicon=["abc"]).decode(emissions("a")).text == ""
    assert CTCDecoder(ALNUM, lexicon=["abc"]).decode(np.zeros((0, ALNUM.num_classes))).score == -math.inf


def test_words_mode_reads_sequences_of_word_tokens():
    words = Alphabet(["one", "two", "three"])  # ids 1, 2, 3
    lp = np.full((5, 4), math.log(0.02))
    for t, c in enumerate([1, 0, 3, 0, 2]):  # best path: one - three - two
        lp[t, c] = math.log(0.9)
    lp[2, 0] = math.log(0.3)  # "three" is outside the lexicon; a blank is the next best there
    lp = log_softmax(lp)
    assert CTCDecoder(words).decode(lp).text == "one three two"
    res = CTCDecoder(words, beam_width=8, lexicon=["one", "two"], lexicon_mode="words").decode(lp)
    assert (res.text, res.token_ids) == ("one two", (1, 2))
    # The trie mode keeps a token alphabet to one lexicon entry; "words" chains them.
    assert len(CTCDecoder(words, beam_width=8, lexicon=["one", "two"], lexicon_mode="trie").decode(lp).token_ids) == 1
    # A word may follow itself (a blank between), and every output is a sequence of lexicon words.
    rep = log_softmax(emissions("1-1-2", Alphabet(["1", "2", "3"]), p=0.9))  # same shape of alphabet, one-symbol ids
    dec = CTCDecoder(words, beam_width=8, lexicon=["one", "two"], lexicon_mode="words")
    assert dec.decode(rep).text == "one one two"
    rng = np.random.default_rng(2)
    for _ in range(20):
        ids = dec.decode(log_softmax(rng.normal(size=(12, 4)) * 3)).token_ids
        assert ids and set(ids) <= {1, 2}


def test_token_alphabet_lexicon():
    music = Alphabet(["clef-G2", "note-C4", "note-D4", "barline"])
    words = ["clef-G2 note-C4 barline", "clef-G2 note-D4 barline", "note-C4 note-C4"]
    lp = np.full((6, 5), math.log(0.1 / 4))
    for t, c in enumerate([1, 0, 2, 0, 0, 4]):
        lp[t, c] = math.log(0.9)
    lp[2, 3] = math.log(0.5 * 0.9)  # D4 almost as likely as C4
    lp = log_softmax(lp)
    for mode in ("score", "candidates", "trie"):
        res = CTCDecoder(music, beam_width=4, lexicon=words, lexicon_mode=mode).decode(lp)
        assert res.text == "clef-G2 note-C4 barline", mode
    lex = Lexicon.build(words, music)
    assert sorted(lex.candidates(music.encode("clef-G2 note-C4"), 1).tolist()) == [0, 2]  # token edits


def test_lexicon_with_hotword_and_lm_bonus():
    lp = emissions(spell("bag"), p=0.5)
    lp[3:5, ALNUM.id_of("u")] = math.log(0.4)
    lp = log_softmax(lp)
    assert CTCDecoder(ALNUM, lexicon=["bag", "bug"]).decode(lp).text == "bag"
    res = CTCDecoder(ALNUM, lexicon=["bag", "bug"], hotwords=["bug"], hotword_weight=2.0).decode(lp)
    assert res.text == "bug"
    assert res.score == pytest.approx(ctc_log_likelihood(lp, ALNUM.encode("bug")))
