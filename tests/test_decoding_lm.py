"""Character n-gram language model, LM fusion in the beam, insertion bonus, hotwords, KenLM."""

from __future__ import annotations

import json
import math
import string

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crnn_ocr.alphabet import Alphabet
from crnn_ocr.decoding import (
    CharNgramLM,
    CTCDecoder,
    HotwordScorer,
    KenLMAdapter,
    LMScorer,
    ctc_log_likelihood,
    log_softmax,
)
from crnn_ocr.decoding.lm import EOS

ALNUM = Alphabet.preset("alphanumeric")
LOWER_SPACE = Alphabet(string.ascii_lowercase + " ")
TEXT = "the cat sat on the mat\nthe dog ate the bone\na cat and a dog\nthe bag is big\n"


def emissions(path: str, alphabet: Alphabet = ALNUM, p: float = 0.9) -> np.ndarray:
    C = alphabet.num_classes
    lp = np.full((len(path), C), math.log((1 - p) / (C - 1)))
    for t, s in enumerate(path):
        lp[t, 0 if s == "-" else alphabet.id_of(s)] = math.log(p)
    return lp


def ambiguous(word: str, pos: int, other: str, ratio: float = 0.8) -> np.ndarray:
    """Emissions for ``word`` whose symbol at ``pos`` has a rival ``other`` at ``ratio`` of its probability."""
    lp = emissions("".join(c + c + "-" for c in word), p=0.5)
    lp[3 * pos : 3 * pos + 2, ALNUM.id_of(other)] = math.log(0.5 * ratio)
    return log_softmax(lp)


# ---------------------------------------------------------------------------------- the n-gram model
@pytest.mark.parametrize("smoothing", ["kneser_ney", "witten_bell"])
@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_ngram_distributions_sum_to_one(smoothing, order):
    lm = CharNgramLM.train(TEXT, order=order, smoothing=smoothing)
    vocab = sorted(set(TEXT) - {"\n"}) + [EOS]
    for ctx in [(), ("t", "h"), ("q", "q"), ("a", " "), ("z",) * 4]:
        ctx = (lm.initial_context() + ctx)[len(ctx):] if order > 1 else ()
        v = lm.log_probs(ctx, vocab)
        unknown = math.exp(lm.log_prob("\x00", ctx))  # all unseen symbols share this mass
        assert np.exp(v).sum() + unknown == pytest.approx(1.0, abs=1e-9)
        assert np.allclose(v, [lm.log_prob(w, ctx) for w in vocab])


def test_ngram_learns_and_round_trips(tmp_path):
    lm = CharNgramLM.train(TEXT.splitlines(), order=4)
    assert lm.perplexity(["the cat ate the bone"]) < lm.perplexity(["xqz vjk wpf"])
    assert lm.log_prob("h", ("<s>", "<s>", "t")) > lm.log_prob("q", ("<s>", "<s>", "t"))
    path = tmp_path / "lm.json"
    lm.save(path)
    back = CharNgramLM.load(path)
    for s in ["the cat", "zzz", "a dog and a bag"]:
        assert back.score(s) == pytest.approx(lm.score(s))
    assert json.loads(path.read_text(encoding="utf-8"))["order"] == 4
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    assert CharNgramLM.from_text_file(corpus, order=4).score("the cat") == pytest.approx(lm.score("the cat"))


def test_ngram_errors(tmp_path):
    with pytest.raises(ValueError, match="empty text"):
        CharNgramLM.train(["", "\n"])
    with pytest.raises(ValueError, match="smoothing"):
        CharNgramLM.train(TEXT, smoothing="laplace")
    with pytest.raises(ValueError, match="order"):
        CharNgramLM.train(TEXT, order=0)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="cannot read language model"):
        CharNgramLM.load(bad)
    bad.write_text('{"format": "other"}', encoding="utf-8")
    with pytest.raises(ValueError, match="not a crnn_ocr.CharNgramLM"):
        CharNgramLM.load(bad)


def test_token_ngram():
    lm = CharNgramLM.train(["clef-G2 note-C4 barline", "clef-G2 note-D4 barline"] * 3, order=3, tokens=True)
    assert lm.log_prob("note-C4", ("<s>", "clef-G2")) > lm.log_prob("barline", ("<s>", "clef-G2"))
    assert lm.score("clef-G2 note-C4 barline") > lm.score("barline barline clef-G2")


# ---------------------------------------------------------------------------------- fusion
def test_lm_fusion_picks_the_likely_word():
    lp = ambiguous("bug", 1, "a")
    lm = CharNgramLM.train(["bag", "bag", "big"], order=3)
    plain = CTCDecoder(ALNUM, beam_width=8).decode(lp)
    fused = CTCDecoder(ALNUM, beam_width=8, lm=lm, alpha=1.0).decode(lp)
    assert (plain.text, fused.text) == ("bug", "bag")
    assert CTCDecoder(ALNUM, beam_width=8, lm=lm, alpha=0.0).decode(lp).text == "bug"
    # The score stays the acoustic log p(l|y).
    assert fused.score == pytest.approx(ctc_log_likelihood(lp, ALNUM.encode("bag")))


def test_lm_from_path_and_token_alphabet(tmp_path):
    music = Alphabet(["clef-G2", "note-C4", "note-D4", "barline"])
    lm = CharNgramLM.train(["clef-G2 note-D4 barline"] * 4, order=3, tokens=True)
    path = tmp_path / "music.json"
    lm.save(path)
    lp = np.full((6, 5), math.log(0.1 / 4))
    for t, c in enumerate([1, 0, 2, 0, 0, 4]):
        lp[t, c] = math.log(0.9)
    lp[2, 3] = math.log(0.7 * 0.9)  # D4 a close second
    lp = log_softmax(lp)
    assert CTCDecoder(music, beam_width=4).decode(lp).text == "clef-G2 note-C4 barline"
    assert CTCDecoder(music, beam_width=4, lm=path, alpha=1.0).decode(lp).text == "clef-G2 note-D4 barline"


def test_insertion_bonus_lengthens_output():
    lp = log_softmax(np.log(np.array([[0.55, 0.45], [0.55, 0.45], [0.55, 0.45]])))
    a = Alphabet("a")
    assert CTCDecoder(a, beam_width=4, beta=-3.0).decode(lp).text == ""
    assert CTCDecoder(a, beam_width=4, beta=3.0).decode(lp).text == "aa"


def test_lm_fusion_with_spaces_and_trie():
    lm = CharNgramLM.train(["the cat", "the bag", "a cat"] * 3, order=4)
    lp = emissions("tt-hh-ee- -cc-aa-tt-", LOWER_SPACE, p=0.6)
    res = CTCDecoder(LOWER_SPACE, beam_width=8, lm=lm, alpha=0.5, lexicon=["the", "cat", "bag"], lexicon_mode="trie").decode(lp)
    assert res.text == "the cat"


# ---------------------------------------------------------------------------------- hotwords
def test_hotword_flips_a_close_call_and_weight_zero_does_not():
    lp = ambiguous("bug", 1, "o", ratio=0.6)
    assert CTCDecoder(ALNUM, beam_width=8).decode(lp).text == "bug"
    assert CTCDecoder(ALNUM, beam_width=8, hotwords=["bog"], hotword_weight=2.0).decode(lp).text == "bog"
    assert CTCDecoder(ALNUM, beam_width=8, hotwords=["bog"], hotword_weight=0.0).decode(lp).text == "bug"
    # Case-folded like labels; unknown symbols are refused.
    assert CTCDecoder(ALNUM, beam_width=8, hotwords=["BOG"], hotword_weight=2.0).decode(lp).text == "bog"
    with pytest.raises(ValueError, match="hotword 0"):
        CTCDecoder(ALNUM, hotwords=["b-g"])


def test_hotword_must_be_a_whole_word():
    lp = emissions("cc-aa-tt-- -ss-", LOWER_SPACE, p=0.6)
    scorer = HotwordScorer(["cat"], LOWER_SPACE, 1.0)
    assert scorer.word_bonus(LOWER_SPACE.encode("cat")) == 1.0
    assert scorer.word_bonus(LOWER_SPACE.encode("a cat is")) == 1.0
    assert scorer.word_bonus(LOWER_SPACE.encode("cats")) == 0.0
    assert scorer.word_bonus(LOWER_SPACE.encode("scat")) == 0.0
    assert CTCDecoder(LOWER_SPACE, beam_width=8, hotwords=["cat"]).decode(lp).text == "cat s"


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 12))
def test_scorer_bonuses_add_up_to_word_bonus(seed, n):
    rng = np.random.default_rng(seed)
    alphabet = Alphabet("ab ")
    hot = HotwordScorer(["ab", "b a", "bb"], alphabet, 1.5)
    lm = LMScorer(CharNgramLM.train(["ab ba", "a b", "bab"], order=3), alphabet, 0.7, 0.3)
    ids = rng.integers(1, alphabet.num_classes, size=n).tolist()
    for scorer in (hot, lm):
        state, total = scorer.initial(), 0.0
        for c in ids:
            total += scorer.bonus(state)[c]
            state = scorer.advance(state, c)
        total += scorer.final(state)
        assert total == pytest.approx(scorer.word_bonus(ids), abs=1e-9)


# ---------------------------------------------------------------------------------- kenlm
def test_kenlm_adapter(tmp_path):
    try:
        import kenlm  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="kenlm"):
            KenLMAdapter(tmp_path / "none.arpa")
        pytest.skip("kenlm is not installed")
    arpa = tmp_path / "chars.arpa"
    arpa.write_text(
        "\\data\\\nngram 1=5\n\n\\1-grams:\n-1.0\t<unk>\t0\n-99\t<s>\t-0.3\n-0.5\t</s>\t0\n-0.3\ta\t-0.2\n-0.6\tb\t-0.2\n\n\\end\\\n",
        encoding="utf-8",
    )
    lm = KenLMAdapter(arpa)
    v = lm.log_probs(lm.initial_context(), ["a", "b"])
    assert v[0] > v[1]
    assert CTCDecoder(Alphabet("ab"), beam_width=4, lm=lm).decode(emissions("aa-", Alphabet("ab"))).text == "a"
