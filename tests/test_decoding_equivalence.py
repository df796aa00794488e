"""The fast beam search against the search as it was (``ctc_reference``): on thousands of random
inputs, with and without LM, hotwords, lexicon trie and pruning, the same prefixes and tracked scores
bit for bit, the same texts and spans, and exact scores equal to ``SCORE_ATOL`` in log space (the
scaled forward, in probabilities, rounds differently from the log-domain trellis; bitwise where the
log domain runs); and deferred results behave as eager ones."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from crnn_ocr.alphabet import Alphabet
from crnn_ocr.decoding import CharNgramLM, CTCDecoder, DecodeResult, beam_search, greedy_decode, log_softmax
from crnn_ocr.decoding.ctc import (
    _beam,
    _forward_scaled_batch,
    _Labelling,
    _prefix_beam_search_batch,
    _result,
    _score_and_align,
    _viterbi_batch,
    check_log_probs,
)
from ctc_reference import _beam as reference_beam
from ctc_reference import _prefix_beam_search as reference_search
from ctc_reference import _score_and_align as reference_score_and_align
from ctc_reference import _viterbi as reference_viterbi
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


SCORE_ATOL = 1e-9  # the exact score's tolerance, absolute in log space


def same_score(a: float, b: float) -> bool:
    """Both -inf, or within ``SCORE_ATOL``."""
    return a == b or abs(a - b) <= SCORE_ATOL


def same(a: DecodeResult, b: DecodeResult) -> bool:
    """Equal texts, ids and spans; scores within ``SCORE_ATOL`` (confidence follows the score)."""
    return (a.text, a.token_ids, a.spans) == (b.text, b.token_ids, b.spans) and same_score(a.score, b.score)


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
    assert same(lazy, reference_decode(lp, LETTERS, 8))
    now = _result(lp, lazy.token_ids, LETTERS)  # the same computation, forced at once
    eager = DecodeResult.make(now.text, now.token_ids, now.score, now.spans)
    assert lazy == eager and hash(lazy) == hash(eager)
    for twin in (pickle.loads(pickle.dumps(CTCDecoder(LETTERS, beam_width=8).decode(lp))),
                 copy.deepcopy(CTCDecoder(LETTERS, beam_width=8).decode(lp))):
        assert twin == eager and not {"_score", "_spans"} & set(vars(twin))
    # Each pass on its own: the spans without the forward, the score without the Viterbi.
    for field, pending in (("spans", "_score"), ("score", "_spans"), ("confidence", "_spans")):
        res = CTCDecoder(LETTERS, beam_width=8).decode(lp)
        assert getattr(res, field) == getattr(eager, field)
        assert pending in vars(res) or res.token_ids == greedy_decode(lp, LETTERS).token_ids


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


def _states(ids: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Trellis states (blanks interleaved) and skip flags of a labelling."""
    states = np.zeros(2 * len(ids) + 1, dtype=np.intp)
    states[1::2] = ids
    skip = np.zeros(states.size, dtype=bool)
    skip[3::2] = np.asarray(ids[1:]) != np.asarray(ids[:-1])
    return states, skip


def test_frame_forward_matches_log_domain():
    """The frame loop (probabilities, rescaled) against the log-domain trellis on thousands of
    labellings, flat to very peaky, short to 900 frames: within SCORE_ATOL, or refused (None)."""
    rng = np.random.default_rng(20)
    refused = 0
    for i in range(2500):
        T = int(rng.integers(1, 60 if i % 10 else 900))
        C = int(rng.integers(2, 38))
        x = rng.normal(size=(T, C)) * float(rng.choice([0.3, 2.0, 6.0, 25.0, 80.0]))
        if i % 7 == 0:
            x[rng.random((T, C)) < 0.1] = -np.inf
            x[:, 0] = 0.0
        lp = check_log_probs(log_softmax(x), C)
        L = int(rng.integers(1, max(2, T // 2 + 3)))
        ids = tuple(int(c) for c in (rng.integers(1, C, L) if i % 3 else np.resize(lp[:, 1:].argmax(axis=1) + 1, L)))
        want = reference_score_and_align(lp, ids, align=False)[0]
        got = _Labelling(lp, ids).frames()
        if got is None:
            refused += 1
        else:
            assert want > -np.inf and abs(got - want) <= SCORE_ATOL, (i, got, want)
        if np.isneginf(lp).any() and got is not None:
            assert not np.isneginf(lp[:, np.unique(_states(ids)[0])]).any()
    assert refused < 1000


def test_frame_forward_refuses_what_underflows():
    """A labelling whose one alignment sinks below exp(-700) of the frame's best state: the
    frame loop refuses, the decoder's score falls back to the log domain and stays exact."""
    T = 300
    ids = tuple(int(k) for k in np.arange(T) % 5 + 1)  # one label per frame: the diagonal only
    lp = np.full((T, 6), -50.0)
    lp[:, 0] = 0.0  # the blank is sure: every other state falls e^-3 further behind per frame
    lp[np.arange(T), np.asarray(ids)] = -3.0
    lp = check_log_probs(log_softmax(lp), 6)
    assert _Labelling(lp, ids).frames() is None
    got, want = _score_and_align(lp, ids, align=False)[0], reference_score_and_align(lp, ids, align=False)[0]
    assert want > -np.inf and got == want


@pytest.mark.parametrize("C", [6, 37])
def test_decode_with_frame_forward_matches_reference(monkeypatch, C):
    """Every exact score through the frame loop (where it certifies), even on tiny inputs."""
    import crnn_ocr.decoding.ctc as ctc

    monkeypatch.setattr(ctc, "_frames_pay", lambda S, T: True)
    alphabet = Alphabet("abcdefghijklmnopqrstuvwxyz0123456789"[: C - 1])
    rng = np.random.default_rng(300 + C)
    for i in range(400):
        beam = int(rng.choice([2, 4, 10, 64]))
        lp = check_log_probs(random_input(rng, C), C)
        assert same(beam_search(lp, alphabet, beam), reference_decode(lp, alphabet, beam)), (i, beam)


def test_batched_scaled_forward_matches_log_domain():
    """The batch's scaled forward (items side by side, mixed lengths, some with -inf or extreme
    entries, some impossible): each item within SCORE_ATOL of the log-domain trellis, or refused
    (rarely, where nothing is extreme and the labelling is possible)."""
    rng = np.random.default_rng(21)
    refused = plain = 0
    for _ in range(60):
        C = int(rng.integers(2, 12))
        lps, labels, kinds = [], [], []
        for _ in range(int(rng.integers(1, 30))):
            T = int(rng.integers(1, 80))
            scale = float(rng.choice([0.5, 3.0, 20.0, 300.0]))
            x = rng.normal(size=(T, C)) * scale
            holes = rng.random() < 0.15
            if holes:
                x[rng.random((T, C)) < 0.2] = -np.inf
                x[:, 0] = 0.0
            lps.append(check_log_probs(log_softmax(x), C))
            labels.append(tuple(int(c) for c in rng.integers(1, C, int(rng.integers(1, T // 2 + 3)))))
            kinds.append(scale < 100 and not holes)
        for lp, ids, ordinary, got in zip(lps, labels, kinds, _forward_scaled_batch(lps, labels)):
            want = reference_score_and_align(lp, ids, align=False)[0]
            if got is not None:
                assert want > -np.inf and abs(got - want) <= SCORE_ATOL, (got, want)
            elif ordinary and want > -np.inf:
                refused += 1
            plain += ordinary and want > -np.inf
    assert refused <= plain // 50


@pytest.mark.parametrize("C", [6, 37])
def test_decode_batch_scores_match_reference(C):
    """decode_batch (scores computed together) against the reference, item by item."""
    alphabet = Alphabet("abcdefghijklmnopqrstuvwxyz0123456789"[: C - 1])
    rng = np.random.default_rng(400 + C)
    for _ in range(25):
        beam = int(rng.choice([2, 5, 10]))
        lps = [check_log_probs(random_input(rng, C), C) for _ in range(int(rng.integers(1, 20)))]
        got = CTCDecoder(alphabet, beam_width=beam).decode_batch(lps)
        assert all(same(g, reference_decode(lp, alphabet, beam)) for g, lp in zip(got, lps))


@pytest.mark.parametrize("C", [6, 37])
def test_batched_viterbi_matches_reference(C):
    """The batch's Viterbi (state loop shared, items padded) gives every item the spans of the
    single computation, on mixed lengths with ties, -inf entries and impossible labellings."""
    rng = np.random.default_rng(500 + C)
    for _ in range(40):
        lps = [lp for lp in (check_log_probs(random_input(rng, C), C) for _ in range(int(rng.integers(1, 16)))) if lp.shape[0]]
        labels = [tuple(int(c) for c in rng.integers(1, C, int(rng.integers(1, lp.shape[0] // 2 + 3)))) for lp in lps]
        if lps:
            assert _viterbi_batch(lps, labels) == [reference_viterbi(lp, ids)[1] for lp, ids in zip(lps, labels)]


def labelling_case(rng: np.random.Generator, i: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """A (log-probs, labelling) pair of varied kind: 1 to 800 frames (mostly short), peaky along
    a path or flat, some with -inf entries or ties (rounded or float32 values), and a labelling
    that is random, the greedy one, or the greedy one edited (as a beam's result may be)."""
    T = int(rng.integers(1, 800 if i % 25 == 0 else 120 if i % 5 == 0 else 40))
    C = int(rng.choice([3, 6, 12, 29, 37]))
    kind = i % 6
    x = rng.normal(size=(T, C)) * float(rng.choice([0.3, 1.5, 4.0]))
    if kind in (0, 1, 2):  # peaky along a random path of runs, as a trained model reads
        path = np.repeat(rng.integers(0, C, T), rng.integers(1, 4, T))[:T]
        x[np.arange(T), path] += float(rng.choice([3.0, 6.0, 12.0]))
    if kind == 3:
        x[rng.random((T, C)) < 0.2] = -np.inf
        x[np.arange(T), rng.integers(0, C, T)] = 0.0
    if kind == 4:
        x = np.round(x)  # equal entries: tied alignments
    lp = log_softmax(x)
    if kind == 5 or i % 7 == 0:
        lp = lp.astype(np.float32)  # float32 rounding: more ties
    lp = check_log_probs(lp, C)
    best = lp.argmax(axis=1)
    greedy = tuple(int(c) for j, c in enumerate(best) if c and (j == 0 or best[j - 1] != c))
    pick = i % 3
    if pick == 0 or not greedy:
        ids = tuple(int(c) for c in rng.integers(1, C, int(rng.integers(1, max(2, T // 2 + 2)))))
    elif pick == 1:
        ids = greedy
    else:  # one edit: drop, double or change a symbol
        k = int(rng.integers(0, len(greedy)))
        edit = int(rng.integers(0, 3))
        ids = greedy[:k] + ((), (greedy[k], greedy[k]), (int(rng.integers(1, C)),))[edit] + greedy[k + 1 :]
        ids = ids or greedy
    return lp, ids


def test_labelling_passes_match_reference():
    """The shared per-labelling passes against ctc_reference on thousands of pairs (1 to 800
    frames, peaky and flat, ties, -inf entries, impossible labellings): the Viterbi's best log-prob
    and spans identical (the same floats), the forward (whichever way it goes) within SCORE_ATOL,
    the log-domain forward bit for bit, and the frame loop within SCORE_ATOL or refused."""
    rng = np.random.default_rng(2020)
    frames_used = 0
    for i in range(3000):
        lp, ids = labelling_case(rng, i)
        lab = _Labelling(lp, ids)
        assert lab.viterbi() == reference_viterbi(lp, ids), i
        want = reference_score_and_align(lp, ids, align=False)[0]
        assert same_score(lab.forward(), want), (i, lab.forward(), want)
        assert lab.log_domain() == want or (want == -np.inf and lab.log_domain() == -np.inf), i
        if lab.feasible:
            got = lab.frames()
            if got is not None:
                frames_used += 1
                assert want > -np.inf and abs(got - want) <= SCORE_ATOL, (i, got, want)
    assert frames_used > 1500


@pytest.mark.parametrize("config", ["plain", "lm", "hotwords", "trie", "lm+hotwords+trie"])
def test_long_decodes_match_reference(config):
    """Decoding longer inputs (40 to 300 frames, speech-like peaky and ambiguous) with and
    without LM, hotwords and trie: text, spans and score as the reference computes them."""
    rng = np.random.default_rng(sum(map(ord, config)) + 7)
    for i in range(12):
        T = int(rng.integers(40, 300))
        C = LETTERS.num_classes
        path = np.repeat(rng.integers(0, C, T), rng.integers(1, 4, T))[:T]
        x = rng.normal(size=(T, C)) * 1.5
        x[np.arange(T), path] += 5.0 if i % 2 else 10.0
        lp = check_log_probs(log_softmax(x), C)
        beam = 10
        dec = CTCDecoder(LETTERS, beam_width=beam, **CONFIGS[config])  # type: ignore[arg-type]
        if dec.lexicon is None or _beam(lp, beam, None, dec.scorer) is not None:
            assert same(dec.decode(lp), reference_decode(lp, LETTERS, beam, dec.scorer)), i


def test_lexicon_results_spans_match_reference():
    """Lexicon modes give the score themselves (a word's forward); the spans of a word that is
    not the greedy reading come from the shared Viterbi: as the reference's."""
    rng = np.random.default_rng(31)
    words = ["a", "bad", "cab", "bead", "ace", "dab", "cede", "bee"]
    for mode in ("score", "candidates"):
        dec = CTCDecoder(LETTERS, lexicon=words, lexicon_mode=mode)
        for _ in range(60):
            lp = check_log_probs(random_input(rng, LETTERS.num_classes), LETTERS.num_classes)
            res = dec.decode(lp)
            if res.token_ids and res.token_ids != greedy_decode(lp, LETTERS).token_ids:
                assert res.spans == reference_viterbi(lp, res.token_ids)[1]


def test_score_and_spans_share_one_labelling(monkeypatch):
    """Reading a result's score and spans (either first) builds its emissions once; each is what
    the pass alone gives."""
    import crnn_ocr.decoding.ctc as ctc

    built = []
    original = ctc._Labelling.__init__

    def counting(self, lp, ids):  # type: ignore[no-untyped-def]
        built.append(ids)
        original(self, lp, ids)

    monkeypatch.setattr(ctc._Labelling, "__init__", counting)
    rng = np.random.default_rng(8)
    for first in ("score", "spans"):
        for _ in range(40):
            lp = check_log_probs(log_softmax(rng.normal(size=(30, LETTERS.num_classes)) * 2), LETTERS.num_classes)
            built.clear()
            res = CTCDecoder(LETTERS, beam_width=8).decode(lp)
            if res.token_ids == greedy_decode(lp, LETTERS).token_ids or not res.token_ids:
                continue
            pair = (res.score, res.spans) if first == "score" else (res.spans, res.score)
            assert len(built) == 1
            want = reference_decode(lp, LETTERS, 8)
            assert same(DecodeResult.make(res.text, res.token_ids, res.score, res.spans), want)
            assert pair  # both read


def test_rescale_schedule_bounds_the_fall():
    """Between the frame loop's rescalings the largest value can fall by at most
    exp(-_SCALED_DECAY) (a single frame may fall further, right after a rescaling) and they
    are at most _SCALED_SPAN frames apart."""
    from crnn_ocr.decoding.ctc import _SCALED_DECAY, _SCALED_SPAN, _rescale_after

    rng = np.random.default_rng(3)
    for _ in range(300):
        T = int(rng.integers(1, 2000))
        low = -rng.exponential(float(rng.choice([0.1, 5.0, 50.0, 400.0])), T)
        points = _rescale_after(low)
        assert points == sorted(set(points)) and all(0 < p < T - 1 for p in points)
        for a, b in zip([0, *points], [*points, T - 1]):
            assert b - a <= _SCALED_SPAN
            assert b == a + 1 or low[a + 1 : b + 1].sum() >= -_SCALED_DECAY - 1e-3  # (float slack of the running sums)
