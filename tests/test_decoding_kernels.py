"""The compiled kernels (numba, optional) against the pure-numpy path: the exact score, the
best-path log-prob and the spans bit for bit, on thousands of random inputs (flat and peaky,
impossible classes, repeats, ties, frames that rescale or refuse), one labelling at a time and
through the decoder."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from crnn_ocr.alphabet import Alphabet
from crnn_ocr.decoding import CTCDecoder, ctc_log_likelihood, kernels, log_softmax, viterbi_align
from crnn_ocr.decoding.ctc import _Labelling, _prefix_beam_search

pytest.importorskip("numba")


@pytest.fixture
def compiled():
    k = kernels.get()
    assert k is not None, "numba is installed but the kernels are off (CRNN_OCR_NUMBA=0?)"
    return k


def both(monkeypatch, compiled, fn):
    """fn() with the kernels, then with numpy only."""
    monkeypatch.setattr(kernels, "get", lambda: compiled)
    a = fn()
    monkeypatch.setattr(kernels, "get", lambda: None)
    b = fn()
    monkeypatch.undo()
    return a, b


def random_case(rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, ...]]:
    long = rng.random() < 0.1
    T = int(rng.integers(1, 500 if long else 40))
    C = int(rng.integers(2, 12))
    L = int(rng.integers(1, max(2, min(T + 2, 40))))  # sometimes longer than fits
    ids = tuple(int(i) for i in rng.integers(1, C, size=L))
    x = rng.normal(size=(T, C)) * float(rng.choice([0.5, 2.0, 6.0, 60.0, 400.0]))
    kind = int(rng.integers(0, 4))
    if kind == 1:
        x[rng.random((T, C)) < 0.15] = -np.inf
        x[np.arange(T), rng.integers(0, C, T)] = 0.0
    if kind == 2:
        x = np.round(x)  # ties
    return log_softmax(x), ids


def passes(lp: np.ndarray, ids: tuple[int, ...]) -> tuple:
    lab = _Labelling(lp, ids)
    return lab.forward(), lab.log_domain(), lab.frames(), lab.viterbi()


def test_kernels_match_numpy_bitwise(monkeypatch, compiled):
    rng = np.random.default_rng(20)
    seen = {"frames": 0, "refused": 0, "infeasible": 0, "spans": 0}
    for _ in range(3000):
        lp, ids = random_case(rng)
        a, b = both(monkeypatch, compiled, lambda: passes(lp, ids))  # noqa: B023
        assert repr(a) == repr(b), (lp.shape, ids)  # repr: -inf, None and floats to the last bit
        seen["frames"] += a[2] is not None
        seen["refused"] += a[2] is None
        seen["infeasible"] += a[0] == -np.inf
        seen["spans"] += len(a[3][1]) > 0
    assert min(seen.values()) >= 100, seen  # every branch ran often


def test_frame_loop_rescales_identically(monkeypatch, compiled):
    """Long peaky inputs: many rescalings in the frame loop, and labellings with repeats."""
    rng = np.random.default_rng(21)
    for T in (150, 800, 2000):
        x = rng.normal(size=(T, 6)) * 3.0
        path = rng.integers(0, 6, T)
        x[np.arange(T), path] += 12.0
        lp = log_softmax(x)
        ids = tuple(int(c) for c in path[np.r_[True, path[1:] != path[:-1]]] if c)
        for lab in (ids, ids[: len(ids) // 2], tuple(sorted(ids))):
            a, b = both(monkeypatch, compiled, lambda: passes(lp, lab))  # noqa: B023
            assert repr(a) == repr(b)
            if lab == ids:
                assert a[2] is not None  # the frame loop certified the model's own reading


def test_public_functions_and_decoder_match(monkeypatch, compiled):
    alphabet = Alphabet("abcde")
    rng = np.random.default_rng(22)
    decoders = [CTCDecoder(alphabet, beam_width=w) for w in (1, 4, 16)]
    decoders.append(CTCDecoder(alphabet, beam_width=8, lexicon=["bad", "cab", "dace", "ebb"]))
    for _ in range(300):
        T = int(rng.integers(1, 60))
        lp = log_softmax(rng.normal(size=(T, alphabet.num_classes)) * 3.0)
        ids = tuple(int(i) for i in rng.integers(1, alphabet.num_classes, size=int(rng.integers(1, 8))))

        def run():
            out = [ctc_log_likelihood(lp, ids), viterbi_align(lp, ids)]  # noqa: B023
            for dec in decoders:
                r = dec.decode(lp)  # noqa: B023
                out.append((r.text, r.score, r.spans))
            return out

        a, b = both(monkeypatch, compiled, run)
        assert repr(a) == repr(b)


def test_numba_off_by_environment():
    code = "from crnn_ocr.decoding import kernels; print(kernels.get() is None)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "CRNN_OCR_NUMBA": "0"}).stdout
    assert out.strip() == "True"


def test_beam_frames_match_numpy_bitwise(monkeypatch, compiled):
    """The prefix beam search with its frames compiled: the same prefixes and tracked scores, to
    the last bit, with ties (rounded logits), impossible classes, beams from 1 to wider than the
    prefixes, and many classes."""
    rng = np.random.default_rng(23)
    for n in range(1500):
        C = int(rng.choice([2, 5, 12, 40, 200]))
        T = int(rng.integers(1, 120 if n % 10 == 0 else 30))
        x = rng.normal(size=(T, C)) * float(rng.choice([0.5, 2.0, 6.0]))
        kind = n % 4
        if kind == 1:
            x[rng.random((T, C)) < 0.2] = -np.inf
            x[np.arange(T), rng.integers(0, C, T)] = 0.0
        if kind == 2:
            x = np.round(x)  # many equal entries: ties in the beam
        lp = log_softmax(x)
        beam = int(rng.choice([1, 2, 4, 10, 25, 64]))
        a, b = both(monkeypatch, compiled, lambda: _prefix_beam_search(lp, beam))  # noqa: B023
        assert repr(a) == repr(b), (T, C, beam, kind)
