"""The fast beam search against the search as it was (``ctc_reference``): on thousands of random
inputs, with and without LM, hotwords, lexicon trie and pruning, the same prefixes, tracked scores,
texts, exact scores and spans, bit for bit; and deferred results behave as eager ones."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from crnn_ocr.alphabet import Alphabet
from crnn_ocr.decoding import CharNgramLM, CTCDecoder, DecodeResult, beam_search, log_softmax
from crnn_ocr.decoding.ctc import _beam, _prefix_beam_search_batch, check_log_probs
from ctc_reference import _beam as reference_beam
from ctc_reference import _prefix_beam_search as reference_search
from ctc_reference import reference_decode

LETTERS = Alphabet("abcde ")
LM = CharNgramLM.train(["a bad cab", "bead ace", "dab a bed", "cede bad"] * 2, order=3)
CONFIGS = {  # name: CTCDecoder keyword arguments
    "plain": {},
    "lm": {"lm": LM, "alpha": 0.7, "beta": 0.3},
    "hotwords": {"hotwords": ["bad", "cab"], "hotword_weight": 2.0},
    "trie": {"lexicon": ["a", "bad", "cab", "bead", "ace"], "lexicon_mode": "trie"},
    "lm+hotwords+trie": {"lm": LM, "hotwords": ["bead"], "lexicon": ["a", "bad", "bead", "dab"], "lexicon_mode": "trie"},
}


def random_input(rng: np.random.Generator, C: int) -> np.ndarray:
    """(T, C) log-probs of varied shape: flat or peaky, sometimes with impossible classes,
    sometimes ties (float32 rounding of a few distinct values)."""
    T = int(rng.integers(0, 40))
    kind = int(rng.integers(0, 4))
    x = rng.normal(size=(T, C)) * float(rng.choice([0.5, 2.0, 6.0]))
    if kind == 1 and T:
        x[rng.random((T, C)) < 0.2] = -np.inf
        x[np.arange(T), rng.integers(0, C, T)] = 0.0
    if kind == 2:
        x = np.round(x)  # many equal entries: ties in the beam
    lp = log_softmax(x)
    return lp.astype(np.float32) if kind == 3 else lp


def same(a: DecodeResult, b: DecodeResult) -> bool:
    """Equal fields, scores compared bitwise (so -inf == -inf and 0.0 != -0.0)."""
    return (a.text, a.token_ids, a.spans) == (b.text, b.token_ids, b.spans) and np.float64(a.score).tobytes() == np.float64(b.score).tobytes()


@pytest.mark.parametrize("config", list(CONFIGS))
def test_beam_matches_reference(config):
    rng = np.random.default_rng(sum(map(ord, config)))
    for beam in (2, 3, 5, 10, 25):
        for prune in (None, -4.0):
            dec = CTCDecoder(LETTERS, beam_width=beam, prune_log_prob=prune, **CONFIGS[config])  # type: ignore[arg-type]
            for _ in range(60):
                lp = check_log_probs(random_input(rng, LETTERS.num_classes), LETTERS.num_classes)
                got, want = _beam(lp, beam, prune, dec.scorer), reference_beam(lp, beam, prune, dec.scorer)
                assert got == want
                if dec.lexicon is None or want is not None:
                    assert same(dec.decode(lp), reference_decode(lp, LETTERS, beam, dec.scorer, prune))


@pytest.mark.parametrize("C", [12, 37])
def test_beam_matches_reference_plain(C):
    """Many plain searches on larger alphabets, beam 1 (greedy) to 64."""
    alphabet = Alphabet("abcdefghijklmnopqrstuvwxyz0123456789"[: C - 1])
    rng = np.random.default_rng(C)
    for i in range(600):
        beam = int(rng.choice([1, 2, 4, 10, 16, 64]))
        lp = check_log_probs(random_input(rng, C), C)
        assert same(beam_search(lp, alphabet, beam), reference_decode(lp, alphabet, beam)), (i, beam)


def test_deferred_result_behaves_as_eager():
    rng = np.random.default_rng(5)
    lp = log_softmax(rng.normal(size=(30, LETTERS.num_classes)) * 2)
    buffer = lp.copy()
    lazy = CTCDecoder(LETTERS, beam_width=8).decode(buffer)
    buffer[:] = 0.0  # the caller reuses its buffer: the deferred result holds its own copy
    eager = reference_decode(lp, LETTERS, 8)
    assert same(lazy, eager) and lazy == eager and hash(lazy) == hash(eager)
    for twin in (pickle.loads(pickle.dumps(CTCDecoder(LETTERS, beam_width=8).decode(lp))),
                 copy.deepcopy(CTCDecoder(LETTERS, beam_width=8).decode(lp))):
        assert twin == eager and "_compute" not in vars(twin)


def test_decode_batch_equals_decode():
    rng = np.random.default_rng(9)
    for config in CONFIGS:
        dec = CTCDecoder(LETTERS, beam_width=6, **CONFIGS[config])  # type: ignore[arg-type]
        batch = np.stack([log_softmax(rng.normal(size=(20, LETTERS.num_classes)) * 3) for _ in range(17)])
        lengths = rng.integers(0, 21, size=17)
        got = dec.decode_batch(batch, lengths)
        want = [dec.decode(x[:n]) for x, n in zip(batch, lengths)]
        assert all(same(a, b) for a, b in zip(got, want))


@pytest.mark.parametrize("C", [6, 37])
def test_batch_search_matches_reference(C):
    """The batched search against the reference, item by item, on batches of mixed lengths."""
    rng = np.random.default_rng(100 + C)
    for _ in range(30):
        lps = [check_log_probs(random_input(rng, C), C) for _ in range(int(rng.integers(2, 24)))]
        lps = [lp for lp in lps if lp.shape[0]]
        beam = int(rng.choice([2, 3, 10, 25]))
        if lps:
            assert _prefix_beam_search_batch(lps, beam) == [reference_search(lp, beam) for lp in lps]
