"""Greedy and prefix beam search, the forward algorithm and Viterbi alignment: exact
expectations on hand-built emissions, and agreement with brute force, a plain reference beam
search and torch's ctc_loss."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crnn_ocr.alphabet import Alphabet
from crnn_ocr.decoding import (
    AUTO_PRUNE_LOG_PROB,
    PRUNE_CLASSES,
    CTCDecoder,
    DecodeResult,
    batch_ctc_log_likelihood,
    beam_search,
    ctc_log_likelihood,
    greedy_decode,
    log_softmax,
    viterbi_align,
)
from crnn_ocr.decoding.ctc import _beam, _prefix_beam_search

ROOT = Path(__file__).resolve().parents[1]
ALNUM = Alphabet.preset("alphanumeric")


def emissions(path: str, alphabet: Alphabet = ALNUM, p: float = 0.9) -> np.ndarray:
    """(T, C) log-probs whose best path is ``path`` ('-' = blank), ``p`` on the path."""
    C = alphabet.num_classes
    lp = np.full((len(path), C), math.log((1 - p) / (C - 1)))
    for t, s in enumerate(path):
        lp[t, 0 if s == "-" else alphabet.id_of(s)] = math.log(p)
    return lp


def random_log_probs(seed: int, T: int, C: int, sharpness: float = 2.0, zeros: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(T, C)) * sharpness
    if zeros and T:
        x[rng.random((T, C)) < 0.15] = -np.inf  # some classes impossible ...
        x[np.arange(T), rng.integers(0, C, T)] = 0.0  # ... but never a whole frame
    return log_softmax(x)


def brute_force(lp: np.ndarray) -> dict[tuple[int, ...], float]:
    """log p(l|y) of every labelling, by enumerating all C**T paths."""
    T, C = lp.shape
    if T == 0:
        return {(): 0.0}
    out: dict[tuple[int, ...], float] = defaultdict(lambda: -math.inf)
    for path in itertools.product(range(C), repeat=T):
        score = float(sum(lp[t, c] for t, c in enumerate(path)))
        label = tuple(c for i, c in enumerate(path) if c != 0 and (i == 0 or path[i - 1] != c))
        out[label] = float(np.logaddexp(out[label], score))
    return dict(out)


def reference_beam(lp: np.ndarray, beam: int) -> dict[tuple[int, ...], float]:
    """Textbook prefix beam search with dicts (no pruning): the final beam, prefix -> log-prob."""
    T, C = lp.shape
    la = np.logaddexp
    cur: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, -math.inf)}
    for t in range(T):
        nxt: dict[tuple[int, ...], list[float]] = defaultdict(lambda: [-math.inf, -math.inf])
        for pre, (pb, pnb) in cur.items():
            tot = la(pb, pnb)
            nxt[pre][0] = la(nxt[pre][0], tot + lp[t, 0])
            for c in range(1, C):
                if pre and pre[-1] == c:
                    nxt[pre][1] = la(nxt[pre][1], pnb + lp[t, c])
                    nxt[pre + (c,)][1] = la(nxt[pre + (c,)][1], pb + lp[t, c])
                else:
                    nxt[pre + (c,)][1] = la(nxt[pre + (c,)][1], tot + lp[t, c])
        ranked = sorted(nxt.items(), key=lambda kv: -la(*kv[1]))[:beam]
        cur = {k: (v[0], v[1]) for k, v in ranked if la(*v) > -math.inf}
    return {k: float(la(*v)) for k, v in cur.items()}


# ---------------------------------------------------------------------------------- exact cases
def test_bug_decodes_with_spans():
    res = CTCDecoder(ALNUM).decode(emissions("bb-uu-g"))
    assert res.text == "bug"
    assert res.token_ids == (ALNUM.id_of("b"), ALNUM.id_of("u"), ALNUM.id_of("g"))
    assert res.spans == ((0, 2), (3, 5), (6, 7))
    assert res.score == pytest.approx(7 * math.log(0.9))
    assert res.confidence == pytest.approx(0.9**7)


def test_beam_bug_has_same_spans_and_exact_score():
    lp = emissions("bb-uu-g")
    res = CTCDecoder(ALNUM, beam_width=10).decode(lp)
    assert res.text == "bug"
    assert res.spans == ((0, 2), (3, 5), (6, 7))
    assert res.score == pytest.approx(ctc_log_likelihood(lp, res.token_ids))
    assert res.score > 7 * math.log(0.9)  # summed over alignments: more than the best path


def test_repeat_needs_blank():
    res = greedy_decode(emissions("a-a"), ALNUM)
    assert res.text == "aa"
    assert res.spans == ((0, 1), (2, 3))
    assert greedy_decode(emissions("aaa"), ALNUM).text == "a"
    assert beam_search(emissions("a-a"), ALNUM, 8).text == "aa"


def test_beam_beats_greedy_when_alignments_add_up():
    # Two frames, p(blank) = 0.6, p(a) = 0.4: best path "--" -> "" (0.36), but
    # p("a") = 0.4*0.4 + 0.4*0.6 + 0.6*0.4 = 0.64.
    ab = Alphabet("a")
    lp = np.log(np.array([[0.6, 0.4], [0.6, 0.4]]))
    g = greedy_decode(lp, ab)
    b = beam_search(lp, ab, beam_width=4)
    assert (g.text, g.score) == ("", pytest.approx(math.log(0.36)))
    assert (b.text, b.score) == ("a", pytest.approx(math.log(0.64)))
    assert b.confidence == pytest.approx(0.64)
    assert b.spans == ((0, 1),)  # a tie between (0,1) and (1,2); the first is kept


def test_empty_and_all_blank():
    for dec in (CTCDecoder(ALNUM), CTCDecoder(ALNUM, beam_width=5)):
        res = dec.decode(np.zeros((0, ALNUM.num_classes)))
        assert res == DecodeResult("", (), 0.0, 1.0, ())
        res = dec.decode(emissions("----"))
        assert (res.text, res.token_ids, res.spans) == ("", (), ())


def test_logits_path_and_confidence_range():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(12, ALNUM.num_classes)) * 5
    a = CTCDecoder(ALNUM, beam_width=4, logits=True).decode(logits)
    b = CTCDecoder(ALNUM, beam_width=4).decode(log_softmax(logits))
    c = CTCDecoder(ALNUM, beam_width=4).decode(logits, logits=True)
    assert a == b == c
    assert 0.0 <= a.confidence <= 1.0 and a.confidence == pytest.approx(math.exp(a.score))


def test_decode_batch_with_lengths():
    dec = CTCDecoder(ALNUM, beam_width=3)
    items = [emissions("bb-uu-g"), emissions("a-a----"), emissions("c------")]
    batch = np.stack(items)
    batch[2, 1:] = np.nan  # padding beyond the length is never read
    out = dec.decode_batch(batch, lengths=[7, 3, 1])
    assert [r.text for r in out] == ["bug", "aa", "c"]
    assert [r.text for r in dec.decode_batch([items[0], items[1][:3]])] == ["bug", "aa"]
    assert dec.decode_batch(np.zeros((0, 5, ALNUM.num_classes))) == []
    assert CTCDecoder(ALNUM).decode_batch(batch[:2]) == [CTCDecoder(ALNUM).decode(x) for x in items[:2]]


def test_float32_and_alphabet_spec():
    lp = emissions("bb-uu-g").astype(np.float32)
    assert CTCDecoder("alphanumeric", beam_width=2).decode(lp).text == "bug"


def test_token_alphabet_decodes_tokens():
    music = Alphabet(["clef-G2", "note-C4_quarter", "barline"])
    lp = np.full((5, 4), math.log(0.05 / 3))
    for t, c in enumerate([1, 0, 2, 2, 3]):
        lp[t, c] = math.log(0.95)
    res = CTCDecoder(music, beam_width=4).decode(lp)
    assert res.text == "clef-G2 note-C4_quarter barline"
    assert res.spans == ((0, 1), (2, 4), (4, 5))


# ---------------------------------------------------------------------------------- properties
@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), T=st.integers(0, 6), n_sym=st.integers(1, 3),
       sharp=st.floats(0.3, 4.0), zeros=st.booleans())
def test_large_beam_finds_most_probable_labelling(seed, T, n_sym, sharp, zeros):
    alphabet = Alphabet("abc"[:n_sym])
    lp = random_log_probs(seed, T, n_sym + 1, sharp, zeros)
    probs = brute_force(lp)
    best = max(probs.values())
    res = beam_search(lp, alphabet, beam_width=2000)
    assert res.score == pytest.approx(best, abs=1e-9)
    assert res.score == pytest.approx(probs[res.token_ids], abs=1e-9)
    # Every labelling's forward score matches brute force, singly and batched.
    labels = list(probs)
    assert np.allclose(batch_ctc_log_likelihood(lp, labels), [probs[k] for k in labels], atol=1e-9)
    for k in labels[:5]:
        assert ctc_log_likelihood(lp, k) == pytest.approx(probs[k], abs=1e-9)


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), T=st.integers(1, 9), C=st.integers(2, 5), beam=st.integers(2, 6),
       sharp=st.floats(0.3, 4.0), zeros=st.booleans())
def test_beam_matches_reference_beam_search(seed, T, C, beam, sharp, zeros):
    lp = random_log_probs(seed, T, C, sharp, zeros)
    ids, tracked = _prefix_beam_search(lp, beam)
    ref = reference_beam(lp, beam)
    assert tracked == pytest.approx(max(ref.values()), abs=1e-9)
    assert ids in ref and ref[ids] == pytest.approx(tracked, abs=1e-9)  # same prefix up to ties


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), T=st.integers(0, 30), C=st.integers(2, 8), sharp=st.floats(0.3, 6.0))
def test_beam_width_one_is_greedy(seed, T, C, sharp):
    alphabet = Alphabet("abcdefg"[: C - 1])
    lp = random_log_probs(seed, T, C, sharp)
    g = greedy_decode(lp, alphabet)
    assert beam_search(lp, alphabet, beam_width=1) == g
    assert CTCDecoder(alphabet).decode(lp) == g
    assert g.score == pytest.approx(float(lp.max(axis=1).sum()) if T else 0.0)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), T=st.integers(1, 6), n_sym=st.integers(1, 3), zeros=st.booleans())
def test_viterbi_alignment_is_the_best_path(seed, T, n_sym, zeros):
    lp = random_log_probs(seed, T, n_sym + 1, 2.0, zeros)
    C = n_sym + 1
    best_paths: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(C), repeat=T):
        label = tuple(c for i, c in enumerate(path) if c != 0 and (i == 0 or path[i - 1] != c))
        s = float(sum(lp[t, c] for t, c in enumerate(path)))
        best_paths[label] = max(best_paths.get(label, -math.inf), s)
    for label, s in list(best_paths.items())[:6]:
        score, spans = viterbi_align(lp, label)
        assert score == pytest.approx(s, abs=1e-9)
        if score == -math.inf:
            assert spans == ()
            continue
        # The spans rebuild a path of this labelling with exactly that probability.
        path = [0] * T
        for (a, b), c in zip(spans, label):
            assert 0 <= a < b <= T
            path[a:b] = [c] * (b - a)
        assert all(spans[i][1] <= spans[i + 1][0] for i in range(len(spans) - 1))
        rebuilt = tuple(c for i, c in enumerate(path) if c != 0 and (i == 0 or path[i - 1] != c))
        assert rebuilt == label
        assert sum(lp[t, c] for t, c in enumerate(path)) == pytest.approx(s, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), T=st.integers(1, 40), C=st.integers(2, 30), beam=st.sampled_from([1, 2, 8, 25]))
def test_results_are_consistent(seed, T, C, beam):
    alphabet = Alphabet([chr(0x61 + i) for i in range(C - 1)])
    lp = random_log_probs(seed, T, C, 3.0)
    res = CTCDecoder(alphabet, beam_width=beam).decode(lp)
    assert res.text == alphabet.decode(res.token_ids)
    assert len(res.spans) == len(res.token_ids)
    assert all(0 <= a < b <= T for a, b in res.spans)
    assert all(res.spans[i][1] <= res.spans[i + 1][0] for i in range(len(res.spans) - 1))
    assert all(lp[a:b, c].max() > -math.inf for (a, b), c in zip(res.spans, res.token_ids))
    assert 0.0 <= res.confidence <= 1.0


def test_wider_beam_never_scores_worse_on_average():
    rng = np.random.default_rng(3)
    alphabet = Alphabet("abcd")
    wins = 0
    for _ in range(20):
        lp = log_softmax(rng.normal(size=(10, 5)) * 1.5)
        narrow = beam_search(lp, alphabet, 2).score
        wide = beam_search(lp, alphabet, 64).score
        wins += wide >= narrow - 1e-12
    assert wins == 20


def test_class_pruning_is_exact_on_peaky_input_and_documented_inexact():
    lp = emissions("bb-uu-g", p=0.99)
    assert beam_search(lp, ALNUM, 8, prune_log_prob=-5.0).text == "bug"
    # On flat input, pruning every class changes nothing but new prefixes: beam keeps ""
    flat = np.log(np.full((4, 3), 1 / 3))
    assert beam_search(flat, Alphabet("ab"), 8, prune_log_prob=-0.5).text == ""


@pytest.mark.parametrize("seed", range(6))
def test_pruned_search_runs_on_the_classes_that_reach_the_threshold(seed):
    """A class below the threshold at every frame can never enter a prefix: searching the others
    only (what large alphabets get) finds what the pruned search over every class finds."""
    lp = random_log_probs(seed, T=12, C=200, sharpness=4.0)
    for prune in (-2.0, -6.0):
        assert (lp >= prune).any(axis=0).sum() < 200
        for beam in (1, 3, 8):
            assert _beam(lp, beam, prune) == _prefix_beam_search(lp, beam, prune)
    assert CTCDecoder(Alphabet.preset("printable")).prune_log_prob is None  # small alphabets: exact by default
    assert CTCDecoder(Alphabet([chr(0x4E00 + i) for i in range(PRUNE_CLASSES)])).prune_log_prob == AUTO_PRUNE_LOG_PROB


# ---------------------------------------------------------------------------------- torch
def test_forward_agrees_with_torch_ctc_loss():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    for _ in range(30):
        T, C = int(rng.integers(1, 40)), int(rng.integers(2, 12))
        lp = log_softmax(rng.normal(size=(T, C)) * rng.uniform(0.5, 5))
        L = int(rng.integers(0, T + 3))
        labels = [tuple(rng.integers(1, C, size=int(rng.integers(0, L + 1))).tolist()) for _ in range(4)]
        ours = batch_ctc_log_likelihood(lp, labels)
        for lab, mine in zip(labels, ours):
            loss = torch.nn.functional.ctc_loss(
                torch.from_numpy(lp)[:, None, :],
                torch.tensor(lab, dtype=torch.long)[None, :] if lab else torch.zeros(1, 0, dtype=torch.long),
                torch.tensor([T]),
                torch.tensor([len(lab)]),
                blank=0,
                reduction="none",
            )
            ref = -float(loss[0])
            if math.isinf(ref):
                assert mine == -math.inf
            else:
                assert mine == pytest.approx(ref, abs=1e-4)
            assert ctc_log_likelihood(lp, lab) == pytest.approx(mine, abs=1e-9) or mine == -math.inf


def test_forward_long_input_with_zero_probabilities():
    rng = np.random.default_rng(1)
    lp = log_softmax(rng.normal(size=(800, 29)) * 3)
    lp[rng.random(lp.shape) < 0.3] = -np.inf
    lp[np.arange(800), 0] = np.log(0.5)
    lp = log_softmax(lp)
    ids = tuple(rng.integers(1, 29, size=150).tolist())
    a = ctc_log_likelihood(lp, ids)
    # Cross-check with a plain frame-by-frame log-space forward pass.
    ext = [0]
    for i in ids:
        ext += [i, 0]
    S = len(ext)
    alpha = np.full(S, -np.inf)
    alpha[0], alpha[1] = lp[0, 0], lp[0, ext[1]]
    for t in range(1, 800):
        new = alpha.copy()
        new[1:] = np.logaddexp(new[1:], alpha[:-1])
        for s in range(3, S, 2):
            if ext[s] != ext[s - 2]:
                new[s] = np.logaddexp(new[s], alpha[s - 2])
        alpha = new + lp[t, ext]
    ref = float(np.logaddexp(alpha[-1], alpha[-2]))
    assert a == pytest.approx(ref, abs=1e-6) or (a == ref == -math.inf)


def test_infeasible_labelling_scores_minus_inf():
    lp = emissions("ab")
    assert ctc_log_likelihood(lp, [ALNUM.id_of("a")] * 2) == -math.inf  # "aa" needs 3 frames
    assert viterbi_align(lp, [ALNUM.id_of("a")] * 2) == (-math.inf, ())
    assert ctc_log_likelihood(np.zeros((0, 5)), []) == 0.0
    assert ctc_log_likelihood(np.zeros((0, 5)), [1]) == -math.inf


# ---------------------------------------------------------------------------------- imports
def test_import_does_not_load_torch():
    code = (
        "import sys; import crnn_ocr.decoding; from crnn_ocr import CTCDecoder, DecodeResult; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'pyctcdecode', 'fast_ctc_decode', 'kenlm')); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
