"""CTC primitives on numpy log-probabilities ``(T, C)``: checks, greedy and prefix beam search,
the forward algorithm and Viterbi alignment. The blank is class 0 (``crnn_ocr.alphabet.BLANK``).

Everything here is float64 numpy; nothing imports torch.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Protocol

import numpy as np

from crnn_ocr.alphabet import BLANK, Alphabet
from crnn_ocr.decoding import kernels
from crnn_ocr.decoding.result import DecodeResult, Spans

NEG_INF = -np.inf
_PROB_ATOL = 1e-3  # log-probs may exceed 0 by float error; more means "not log-probabilities"
_NORM_ATOL = 1e-2  # |logsumexp| of a row above this means the rows are not normalized
_MASS_LO, _MASS_HI = float(np.exp(-_NORM_ATOL)), float(np.exp(_NORM_ATOL))  # the same, as row sums

__all__ = [
    "PrefixScorer",
    "batch_ctc_log_likelihood",
    "beam_search",
    "check_log_probs",
    "collapse_path",
    "ctc_log_likelihood",
    "greedy_decode",
    "log_softmax",
    "viterbi_align",
]


# ---------------------------------------------------------------------------------- input checks
def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable ``log_softmax`` along ``axis`` (float64, same shape as ``x``)."""
    x = np.asarray(x, dtype=np.float64)
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        shifted = x - m
        out: np.ndarray = shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
        return out


def check_log_probs(
    log_probs: np.ndarray,
    num_classes: int | None = None,
    *,
    logits: bool = False,
    name: str = "log_probs",
) -> np.ndarray:
    """Validate a ``(T, C)`` array and return it as float64 log-probabilities.

    ``-inf`` (probability 0) is allowed; NaN, ``+inf``, probabilities, unnormalized rows and a
    ``C`` different from ``num_classes`` raise ``ValueError``. With ``logits=True`` the rows are
    raw scores and ``log_softmax`` is applied.
    """
    arr = np.asarray(log_probs)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if arr.ndim != 2:
        hint = " (a batch (N, T, C) goes to decode_batch)" if arr.ndim == 3 else ""
        raise ValueError(f"{name} must have shape (T, C), got shape {arr.shape}{hint}")
    if num_classes is not None and arr.shape[1] != num_classes:
        raise ValueError(
            f"{name} has C={arr.shape[1]} classes but the alphabet has {num_classes} "
            f"({num_classes - 1} symbols + blank)"
        )
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has no classes (shape {arr.shape})")
    arr = arr.astype(np.float64, copy=False)
    if arr.shape[0] == 0:
        return arr
    if not logits:
        # Fast path: rows of valid log-probabilities have probability mass 1 and no positive
        # value (NaN, +inf, dead frames and probabilities all fail it and get the checks below).
        with np.errstate(over="ignore", invalid="ignore"):
            mass = np.exp(arr).sum(axis=1)  # (T,)
        if mass.min() >= _MASS_LO and mass.max() <= _MASS_HI and arr.max() <= _PROB_ATOL:
            return arr
    finite = np.isfinite(arr)
    if not finite.all():
        if np.isnan(arr).any():
            t, c = np.argwhere(np.isnan(arr))[0]
            raise ValueError(f"{name} contains NaN (first at frame {t}, class {c})")
        if np.isposinf(arr).any():
            t, c = np.argwhere(np.isposinf(arr))[0]
            raise ValueError(f"{name} contains +inf (first at frame {t}, class {c})")
        dead = ~finite.any(axis=1)
        if dead.any():
            raise ValueError(f"{name} frame {int(np.argmax(dead))} has no finite value (every class has probability 0)")
    if logits:
        return log_softmax(arr, axis=1)
    top = float(arr.max())
    if top > _PROB_ATOL:
        if float(arr.min()) >= 0.0 and np.allclose(arr.sum(axis=1), 1.0, atol=1e-3):
            raise ValueError(
                f"{name} looks like probabilities (non-negative rows summing to 1); pass np.log(probs), "
                "or raw scores with logits=True"
            )
        raise ValueError(
            f"{name} has positive values (max {top:.4g}) but log-probabilities are <= 0; "
            "pass logits=True to apply log_softmax to raw scores"
        )
    lse = _logsumexp_rows(arr)
    bad = np.abs(lse) > _NORM_ATOL
    if bad.any():
        t = int(np.argmax(bad))
        raise ValueError(
            f"{name} rows are not normalized log-probabilities (frame {t}: logsumexp = {lse[t]:.4g}, "
            "expected 0); pass logits=True to normalize raw scores"
        )
    return arr


def _logsumexp_rows(a: np.ndarray) -> np.ndarray:
    m = a.max(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        lse: np.ndarray = m + np.log(np.exp(a - m[:, None]).sum(axis=1))
        return lse


def _check_ids(ids: Sequence[int], num_classes: int, what: str = "label") -> tuple[int, ...]:
    out = tuple(int(i) for i in ids)
    for pos, i in enumerate(out):
        if not 0 < i < num_classes:
            raise ValueError(f"{what} id {i} at position {pos} is outside 1..{num_classes - 1} (0 is the blank)")
    return out


# ---------------------------------------------------------------------------------- greedy
def collapse_path(best: np.ndarray) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...]]:
    """A path of one class per frame ``(T,)`` -> (ids, spans): each run of a class is one symbol
    spanning frames ``[start, end)``, blank runs are dropped. The one best-path collapse: greedy
    decoding here and the trainer's batch accuracy (``crnn_ocr.engine.ctc.greedy_ids``) use it."""
    T = len(best)
    if T == 0:
        return (), ()
    # Runs of equal classes: starts (first frames) and ends (exclusive).
    ends = (np.flatnonzero(best[1:] != best[:-1]) + 1).tolist()
    starts = [0, *ends]
    ends.append(T)
    classes = best[starts].tolist()
    ids = tuple(c for c in classes if c != BLANK)
    spans = tuple((a, b) for a, b, c in zip(starts, ends, classes) if c != BLANK)
    return ids, spans


def _greedy(lp: np.ndarray) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...], float]:
    """Best path of a checked ``(T, C)`` array -> (ids, spans, path log-prob)."""
    if lp.shape[0] == 0:
        return (), (), 0.0
    best = lp.argmax(axis=1)  # (T,)
    ids, spans = collapse_path(best)
    return ids, spans, float(lp.max(axis=1).sum())


def greedy_decode(log_probs: np.ndarray, alphabet: Alphabet, *, logits: bool = False) -> DecodeResult:
    """Best-path decoding of ``(T, C)`` log-probs: argmax per frame, collapse repeats, drop blanks.

    ``score`` is the log-probability of that single best path (see ``DecodeResult``).
    """
    lp = check_log_probs(log_probs, alphabet.num_classes, logits=logits)
    ids, spans, score = _greedy(lp)
    return DecodeResult.make(alphabet.decode(ids), ids, score, spans)


# ---------------------------------------------------------------------------------- forward / Viterbi
def _extend(labels: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Blank-interleaved labels: ext (W, S) class per state, skip (W, S) bool, lengths (W,)."""
    W = len(labels)
    lens = np.fromiter((len(lab) for lab in labels), dtype=np.intp, count=W)
    lmax = int(lens.max()) if W else 0
    padded = np.zeros((W, lmax), dtype=np.intp)
    for i, lab in enumerate(labels):
        padded[i, : len(lab)] = lab
    return _extend_padded(padded, lens)


def _extend_padded(padded: np.ndarray, lens: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    W, lmax = padded.shape
    ext = np.zeros((W, 2 * lmax + 1), dtype=np.intp)
    ext[:, 1::2] = padded
    skip = np.zeros(ext.shape, dtype=bool)
    if lmax > 1:
        # A label state may be entered straight from the previous label unless both are equal.
        skip[:, 3::2] = padded[:, 1:] != padded[:, :-1]
    return ext, skip, lens


def _clamp(lp: np.ndarray) -> tuple[np.ndarray, float | None]:
    """Replace ``-inf`` by a finite floor so cumulative sums stay finite.

    Returns the clamped array and a cut: a (log-likelihood or best-path) score below the cut can
    only come from alignments through a clamped entry, i.e. it is really ``-inf``. The floor is
    low enough that such alignments change a genuine score by less than ``exp(-50)`` relative.
    """
    finite = np.isfinite(lp)
    if finite.all():
        return lp, None
    T = lp.shape[0]
    f = min(float(lp[finite].min()) if finite.any() else 0.0, 0.0)
    floor = T * (f - 2.0) - 50.0  # below any T-frame alignment of finite entries, by > T*log(3)
    return np.where(finite, lp, floor), T * f - 25.0


def _trellis(
    lp: np.ndarray, ext: np.ndarray, skip: np.ndarray, viterbi: bool
) -> tuple[np.ndarray, np.ndarray | None, float | None]:
    """CTC trellis of W labellings, computed state by state with time vectorized.

    For state s the recursion ``a[t] = combine(a[t-1], m[t]) + e[t]`` (``m``: what enters from
    states s-1, s-2) unrolls to ``a[t] = E[t] + acc_{k<=t}(m[k] - E[k-1])`` with ``E`` the
    cumulative emission sum and ``acc`` a cumulative logsumexp (forward) or max (Viterbi).

    Args:
        lp: (T, C) log-probs, T > 0. ext, skip: (W, S) from ``_extend``.
    Returns:
        A (S, W, T) forward or Viterbi log-scores, G (S, W, T) the per-entry terms ``m - E``
        (Viterbi only, for the backtrace), and the ``_clamp`` cut.
    """
    cum_s, prev_s, cut = _emission_sums(lp, ext)
    A, G = _trellis_rows(cum_s, prev_s, skip, viterbi)
    shape = (ext.shape[1], ext.shape[0], lp.shape[0])
    return A.reshape(shape), G.reshape(shape) if viterbi else None, cut


def _emission_sums(lp: np.ndarray, ext: np.ndarray) -> tuple[np.ndarray, np.ndarray, float | None]:
    """``E[t]`` and ``E[t-1]`` (0 at t = 0) per state: (S, W, T) each, or (S, T) for one
    labelling (rows cheaper to slice than (S, 1, T)); and the ``_clamp`` cut."""
    used = np.unique(ext)  # (U,) the classes of these labellings and the blank
    if 4 * used.size < lp.shape[1]:  # a large alphabet: the sums over time of the used classes only
        lp, ext = lp[:, used], np.searchsorted(used, ext)
    lpc, cut = _clamp(lp)
    T, C = lpc.shape
    cum = np.cumsum(lpc, axis=0).T  # (C, T): E[t]
    prev = np.empty((C, T))
    prev[:, 0] = 0.0
    prev[:, 1:] = cum[:, :-1]  # (C, T): E[t-1]
    ext_t = ext.T if ext.shape[0] > 1 else ext[0]  # (S, W) or (S,)
    return cum[ext_t], prev[ext_t], cut


def _trellis_rows(cum_s: np.ndarray, prev_s: np.ndarray, skip: np.ndarray, viterbi: bool) -> tuple[np.ndarray, np.ndarray]:
    """The state loop of ``_trellis`` on ``_emission_sums`` rows ((S, W, T) or (S, T); skip
    (W, S)): A and G, both shaped as the rows."""
    S = cum_s.shape[0]
    combine = np.maximum if viterbi else np.logaddexp
    acc = np.maximum.accumulate if viterbi else np.logaddexp.accumulate
    A = np.empty(cum_s.shape)
    G = np.empty(cum_s.shape)  # the entry terms m - E[t-1] (kept for the Viterbi backtrace)
    # What enters at frame 0: the path starts in state 0 or 1 (m = 0, and E[-1] = 0).
    G[..., 0] = NEG_INF
    G[: min(S, 2), ..., 0] = 0.0
    G[0, ..., 1:] = NEG_INF
    # Row views made once: three or four numpy calls per state, no slicing in the loop.
    a_rows, g_rows, c_rows = list(A), list(G), list(cum_s)
    a_head, g_tail, p_tail = list(A[..., :-1]), list(G[..., 1:]), list(prev_s[..., 1:])
    # (S,) each; numpy's stubs allow a scalar for a reduction with an axis, hence the ignores
    skip_any: list[bool] = skip.any(axis=0).tolist()  # type: ignore[assignment]
    skip_all: list[bool] = skip.all(axis=0).tolist()  # type: ignore[assignment]
    for s in range(S):
        if s:
            # g[t] = combine(A[s-1][t-1], A[s-2][t-1] where skipping) - E[t-1], for t >= 1
            entry = g_tail[s]
            if skip_any[s]:
                prev2 = a_head[s - 2] if skip_all[s] else np.where(skip[:, s, None], a_head[s - 2], NEG_INF)
                combine(a_head[s - 1], prev2, out=entry)
                np.subtract(entry, p_tail[s], out=entry)
            else:
                np.subtract(a_head[s - 1], p_tail[s], out=entry)
        acc(g_rows[s], axis=-1, out=a_rows[s])
        np.add(a_rows[s], c_rows[s], out=a_rows[s])
    return A, G


def _forward(lp: np.ndarray, ext: np.ndarray, skip: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """log p(l|y) for each padded labelling (W,) on checked log-probs (T may be 0)."""
    T = lp.shape[0]
    if T == 0:
        return np.where(lens == 0, 0.0, NEG_INF)
    A, _, cut = _trellis(lp, ext, skip, viterbi=False)
    final = A[:, :, T - 1]  # (S, W)
    w = np.arange(len(lens))
    ll = final[2 * lens, w]
    has = lens > 0
    ll[has] = np.logaddexp(ll[has], final[2 * lens[has] - 1, w[has]])
    if cut is not None:
        ll[ll < cut] = NEG_INF
    out: np.ndarray = ll
    return out


_CHUNK_CELLS = 1 << 21  # states * words * frames per forward call (~16 MB per float64 array)


def _forward_chunked(lp: np.ndarray, padded: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """``_forward`` over many labellings in chunks that bound memory. padded: (W, Lmax)."""
    W = len(lens)
    out = np.empty(W)
    T = max(lp.shape[0], 1)
    i = 0
    while i < W:
        lmax = int(lens[i:].max()) if W else 0
        step = max(1, _CHUNK_CELLS // ((2 * lmax + 1) * T))
        j = min(W, i + step)
        cl = lens[i:j]
        cmax = int(cl.max())
        ext, skip, _ = _extend_padded(padded[i:j, :cmax], cl)
        out[i:j] = _forward(lp, ext, skip, cl)
        i = j
    return out


def ctc_log_likelihood(log_probs: np.ndarray, ids: Sequence[int]) -> float:
    """log p(ids | log_probs): the CTC forward algorithm in log space.

    Args:
        log_probs: (T, C) log-probabilities, blank = class 0.
        ids: the labelling, ids in ``1..C-1``.
    Returns ``-inf`` when no alignment fits (e.g. T too short). Equals ``-ctc_loss`` (torch,
    ``reduction='none'``).
    """
    lp = check_log_probs(log_probs)
    lab = _check_ids(ids, lp.shape[1])
    ext, skip, lens = _extend([lab])
    return float(_forward(lp, ext, skip, lens)[0])


def batch_ctc_log_likelihood(log_probs: np.ndarray, labels: Sequence[Sequence[int]]) -> np.ndarray:
    """log p(l | log_probs) for many labellings at once: (W,) float64.

    Labellings are padded to the longest and scored together (vectorized over labellings and
    time, looping over trellis states), in chunks that bound memory.
    """
    lp = check_log_probs(log_probs)
    labs = [_check_ids(lab, lp.shape[1]) for lab in labels]
    if not labs:
        return np.empty(0)
    lens = np.fromiter((len(lab) for lab in labs), dtype=np.intp, count=len(labs))
    padded = np.zeros((len(labs), int(lens.max())), dtype=np.intp)
    for i, lab in enumerate(labs):
        padded[i, : len(lab)] = lab
    return _forward_chunked(lp, padded, lens)


_SCALED_MIN_LOG = -700.0  # an emission further below its frame's best (or -inf): the log domain
_SCALED_FLOOR = 1e-300  # the upper-bound row lifts every value to this (far above subnormals)
_SCALED_RTOL = 1e-12  # the two rows must agree this closely (relative, i.e. in log space)
_SCALED_DECAY = 300.0  # rescale before the largest value could fall below exp(-300) ...
_SCALED_SPAN = 100  # ... or grow by 3 ** 100


def _rescale_frames(low: np.ndarray) -> list[bool]:
    """For the batch's scaled forward: the frames after which to rescale, so that between rescalings the
    largest value stays in ``[exp(-_SCALED_DECAY), 3 ** _SCALED_SPAN]``. low: (T,) each frame's
    lowest emission (log, relative to the frame's best), so the largest value of the previous
    rescaling, staying in its state, keeps at least ``exp(sum(low))``; it grows by at most 3."""
    out = [False] * len(low)
    ahead = low.tolist()[1:] + [0.0]  # frame t is rescaled if frame t + 1 could fall too low
    spent, since = 0.0, 0
    for t, x in enumerate(ahead):
        spent += x
        since += 1
        if spent < -_SCALED_DECAY or since >= _SCALED_SPAN:
            out[t] = True
            spent, since = 0.0, 0
    return out


_LN_SUBNORMAL = math.log(2.0**-1022)  # a value below exp(this) may have lost mass to underflow
_FRAMES_RTOL_LOG = -30.0  # the mass underflow may have lost: below exp(-30) of the result
_FEW_REPEATS = 1  # up to this many equal neighbouring labels, the frame loop fixes each by hand


def _frames_pay(S: int, T: int) -> bool:
    """Whether the frame loop (``_forward_frames``) is cheaper than the log-domain trellis
    (``_state_rows``) for S states and T frames, by instruction counts (callgrind): ~150k +
    T * (14.5k + 20 S) against ~50k + S * (20k + 170 T) (a numpy call costs ~4.5k instructions,
    a logaddexp ~85 per cell). The compiled kernels (``kernels``) follow the same choice, though
    the frame loop is cheaper there everywhere: the two ways round differently (to 1e-9), and the
    result must not depend on whether numba is installed."""
    return 150 + T * (14.5 + 0.02 * S) < 50 + S * (20 + 0.17 * T)


class _Labelling:
    """One labelling on one input, for its exact score (``forward``) and its Viterbi spans
    (``viterbi``): the trellis states (blanks interleaved), the classes they use and those
    columns of the log-probs, gathered once and shared by both passes.

    Args:
        lp: (T, C) checked log-probs, T > 0. ids: the labelling, non-empty.
    """

    def __init__(self, lp: np.ndarray, ids: tuple[int, ...]) -> None:
        # (lists built by C-level calls: a long labelling has hundreds of states)
        S = 2 * len(ids) + 1
        states = [BLANK] * S
        states[1::2] = ids
        self.lp, self.states = lp, states
        self.can_skip = [False] * S  # (S,) state s may be entered from s - 2: a label unlike the one before
        self.can_skip[3::2] = map(operator.ne, ids[1:], ids[:-1])
        self.used = sorted({BLANK, *ids})  # (U,) the classes of the states, the blank first
        column = {c: j for j, c in enumerate(self.used)}
        self.cols = [column[BLANK]] * S  # (S,) column of sub per state
        self.cols[1::2] = map(column.__getitem__, ids)
        self.sub = lp[:, self.used]  # (T, U)
        # A labelling needs a frame per label, and one more between two equal labels.
        self.feasible = lp.shape[0] >= len(ids) + self.can_skip[3::2].count(False)
        self._sums: tuple[np.ndarray, float | None] | None = None
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None

    def forward(self) -> float:
        """``log p(ids|lp)``: the frame loop where it pays and certifies, else the log domain."""
        if not self.feasible:
            return NEG_INF
        if _frames_pay(len(self.states), self.lp.shape[0]):
            found = self.frames()
            if found is not None:
                return found
        return self.log_domain()

    def frames(self) -> float | None:
        """``log p(ids|lp)`` by ``_forward_frames``, or ``None`` where it refuses (an emission
        below ``exp(_SCALED_MIN_LOG)`` of its frame's best used class, ``-inf`` included)."""
        top = self.sub.max(axis=1)  # (T,) the best used class per frame
        if top.min() == NEG_INF:  # a frame where every used class has probability 0
            return None
        rel = self.sub - top[:, None]  # (T, U) log, <= 0
        low = rel.min(axis=1)  # (T,)
        if not low.min() >= _SCALED_MIN_LOG:  # -inf entries refused too
            return None
        found = _forward_frames(np.exp(rel), low, self.cols, self.can_skip)
        return None if found is None else found + float(top.sum())

    def log_domain(self) -> float:
        """``log p(ids|lp)`` by the log-domain trellis, as ``_trellis`` computes it (the same
        floats; any input)."""
        ET, cut = self.sums()
        compiled = kernels.get()
        if compiled is not None:
            ll = float(compiled.forward_log(ET, *self.arrays()))
        else:
            A, _ = _state_rows(ET, self.cols, self.can_skip, viterbi=False)
            ll = float(np.logaddexp(A[-1, -1], A[-2, -1]))
        return NEG_INF if cut is not None and ll < cut else ll

    def viterbi(self) -> tuple[float, Spans]:
        """The best alignment -> (its log-prob, per-token spans), as ``_trellis`` and
        ``_backtrace`` give it (the same floats)."""
        if not self.feasible:
            return NEG_INF, ()
        ET, cut = self.sums()
        compiled = kernels.get()
        if compiled is None:
            A, G = _state_rows(ET, self.cols, self.can_skip, viterbi=True)
            return _backtrace(A, G, self.can_skip, cut)
        spans = np.zeros((len(self.states) // 2, 2), dtype=np.intp)
        best = float(compiled.viterbi(ET, *self.arrays(), spans))
        if best == NEG_INF or (cut is not None and best < cut):
            return NEG_INF, ()
        return best, tuple((a, b) for a, b in spans.tolist())

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(cols, can_skip) as arrays, for the compiled kernels; made once, shared by both passes."""
        if self._arrays is None:
            self._arrays = (np.array(self.cols, dtype=np.intp), np.array(self.can_skip, dtype=np.bool_))
        return self._arrays

    def sums(self) -> tuple[np.ndarray, float | None]:
        """(U, T) cumulative sums ``E[t]`` of the used classes, as ``_emission_sums`` makes them
        (``-inf`` clamped the same way), and the ``_clamp`` cut; computed once."""
        if self._sums is None:
            lp, sub, cut = self.lp, self.sub, None
            wide = 4 * len(self.used) >= lp.shape[1]  # _emission_sums clamps the whole array then
            if sub.min() == NEG_INF or (wide and lp.min() == NEG_INF):
                clamped, cut = _clamp(lp if wide else sub)
                sub = clamped[:, self.used] if wide else clamped
            self._sums = (np.ascontiguousarray(np.cumsum(sub, axis=0).T), cut)
        return self._sums


def _rescale_after(low: np.ndarray) -> list[int]:
    """The frames after which ``_forward_frames`` rescales, so that the largest value stays
    within ``[exp(-_SCALED_DECAY), 3 ** _SCALED_SPAN]`` (as ``_rescale_frames``, found by a search
    per rescaling instead of a step per frame). low: (T,) log, each frame's lowest emission: the
    largest value, staying in its state, keeps at least exp(sum(low)); it grows by at most 3."""
    T = len(low)
    if T <= _SCALED_SPAN and float(low.sum()) >= -_SCALED_DECAY:
        return []
    fall = -np.cumsum(low)  # (T,) nondecreasing: the most the largest value can fall since frame 0
    out: list[int] = []
    t0 = 0  # the last rescaling (0: the start, where every value is at most 1)
    while True:
        # the first frame that could take the fall since t0 past _SCALED_DECAY: rescale before it
        t = min(int(np.searchsorted(fall, fall[t0] + _SCALED_DECAY, side="right")), t0 + _SCALED_SPAN)
        t0 = max(t - 1, t0 + 1)
        if t0 >= T - 1:  # no frame left to rescale for
            return out
        out.append(t0)


def _forward_frames(emit: np.ndarray, low: np.ndarray, cols: Sequence[int], can_skip: Sequence[bool]) -> float | None:
    """``log p(l|y) - sum(top)`` by the scaled forward algorithm: probabilities frame by frame,
    the states vectorized, three numpy calls per frame on 1-D arrays (numpy's fast path; four
    with more than ``_FEW_REPEATS`` pairs of equal neighbouring labels), rescaled now and then.

    Certified, or ``None`` (the caller runs the log-domain trellis): a value that underflows
    loses less than 2^-1022 (in its frame's units), and mass at frame t can reach the end at most
    multiplied by the later frames' total emission of the used classes; the sum of all such
    losses must stay below ``exp(_FRAMES_RTOL_LOG)`` of the result. Rounding is ~T * 1e-16
    relative; the tests assert 1e-9 absolute in log space against the log-domain trellis.

    Args:
        emit: (T, U) emissions of the used classes relative to each frame's best one, in (0, 1].
        low: (T,) log of each frame's lowest. cols: (S,) column of emit per state, S >= 3.
        can_skip: (S,) state s may be entered from s - 2.
    """
    T, S = emit.shape[0], len(cols)
    rescales = _rescale_after(low)
    compiled = kernels.get()
    if compiled is not None:
        divisors = np.empty(len(rescales))
        fin = float(compiled.forward_frames(emit, np.array(cols, dtype=np.intp), np.array(can_skip, dtype=np.bool_),
                                            np.array(rescales, dtype=np.intp), divisors))
        if fin < 0.0:
            return None
        return _certified(emit, S, fin, rescales, [math.log(c) for c in divisors.tolist()])
    rows = list(emit[:, cols])  # T rows (S,): each state's emission at frame t
    buf = np.zeros(S + 2)  # two zero states, then the S states: shifted views are s-1 and s-2
    cur, one, two = buf[2:], buf[1:-1], buf[:-2]
    cur[:2] = rows[0][:2]  # the path starts in the blank or the first label
    v = np.empty(S)
    v_odd, two_odd = v[3::2], two[3::2]  # the labels after the first, and the labels before them
    repeats = list(itertools.compress(range(3, S, 2), map(operator.not_, can_skip[3::2])))  # labels equal to the one before
    many = len(repeats) > _FEW_REPEATS
    if many:
        skip_f = np.array(can_skip, dtype=np.float64)
        jump = np.empty(S)
    add, multiply = np.add, np.multiply
    logc: list[float] = []  # log of each rescaling's divisor
    start = 1
    for stop in [*rescales, T - 1]:
        # hot loop: three numpy calls per frame (four with many repeats), rescaling after stop
        if not repeats:
            for row in rows[start : stop + 1]:
                add(cur, one, v)
                add(v_odd, two_odd, v_odd)
                multiply(v, row, cur)
        elif not many:
            for row in rows[start : stop + 1]:
                add(cur, one, v)
                add(v_odd, two_odd, v_odd)
                for s in repeats:  # the same sum as above, without the skip
                    v[s] = cur[s] + one[s]
                multiply(v, row, cur)
        else:
            for row in rows[start : stop + 1]:
                add(cur, one, v)
                multiply(two, skip_f, jump)
                add(v, jump, v)
                multiply(v, row, cur)
        start = stop + 1
        if start < T:
            c = float(cur.max())
            if not c > 0.0:
                return None
            multiply(cur, 1.0 / c, cur)
            logc.append(math.log(c))
    return _certified(emit, S, float(cur[S - 1] + cur[S - 2]), rescales, logc)


def _certified(emit: np.ndarray, S: int, fin: float, rescales: list[int], logc: list[float]) -> float | None:
    """``_forward_frames``' result from the final sum ``fin`` and the logs of the divisors
    ``logc`` (after the frames ``rescales``), or ``None`` where underflow may have lost more than
    it allows (see there)."""
    T = emit.shape[0]
    if not 0.0 < fin < math.inf:
        return None
    # Mass lost at frame t reaches the end times at most exp(ahead[t]): the later frames' total
    # used emission, less the later rescalings (and frame t's own, where it divides by less
    # than 1: a loss before it is scaled up too). First a bound that needs no pass over T.
    gain_max = T * math.log(emit.shape[1]) + math.fsum(max(0.0, -x) for x in logc)
    if _LN_SUBNORMAL + math.log(S * T) + gain_max > math.log(fin) + _FRAMES_RTOL_LOG:
        gain = np.log(emit.sum(axis=1))  # (T,) >= 0
        ahead = gain.sum() - np.cumsum(gain)  # (T,) sum over the frames after t
        if logc:
            shrink = np.zeros(T)
            shrink[rescales] = logc
            ahead -= shrink.sum() - np.cumsum(shrink) + np.minimum(shrink, 0.0)
        if _LN_SUBNORMAL + math.log(S * T) + float(ahead.max()) > math.log(fin) + _FRAMES_RTOL_LOG:
            return None
    return math.fsum(logc) + math.log(fin)


def _state_rows(ET: np.ndarray, cols: Sequence[int], can_skip: Sequence[bool], viterbi: bool) -> tuple[np.ndarray, np.ndarray]:
    """The trellis of one labelling, as ``_trellis_rows`` computes it (state by state, time
    vectorized, the same operations on the same floats), on the used classes' cumulative sums
    instead of (S, T) gathers: A (forward or Viterbi log-scores) and G (the entry terms), (S, T).

    Args:
        ET: (U, T) cumulative emission sums ``E[t]`` of the used classes. cols: (S,) row of ET
            per state. can_skip: (S,) state s may be entered from s - 2.
    """
    S, T = len(cols), ET.shape[1]
    e_rows, e_prev = list(ET), list(ET[:, :-1])  # E[t] and E[t-1] (t >= 1) per used class
    A = np.empty((S, T))
    G = np.empty((S, T))  # the entry terms m - E[t-1] (kept for the Viterbi backtrace)
    G[:, 0] = NEG_INF
    G[: min(S, 2), 0] = 0.0  # the path starts in state 0 or 1
    G[0, 1:] = NEG_INF
    a_rows, g_rows, a_head, g_tail = list(A), list(G), list(A[:, :-1]), list(G[:, 1:])
    combine = np.maximum if viterbi else np.logaddexp
    accumulate = np.maximum.accumulate if viterbi else np.logaddexp.accumulate
    subtract, add = np.subtract, np.add
    accumulate(g_rows[0], out=a_rows[0])
    add(a_rows[0], e_rows[cols[0]], a_rows[0])
    # hot loop: three or four numpy calls per state, each state's row views made beforehand
    for row, g, entry, head1, head2, c, skip in zip(a_rows[1:], g_rows[1:], g_tail[1:], a_head, [a_head[0], *a_head], cols[1:], can_skip[1:]):
        if skip:  # enters from s - 1 or s - 2
            combine(head1, head2, out=entry)
            subtract(entry, e_prev[c], entry)
        else:
            subtract(head1, e_prev[c], entry)
        accumulate(g, out=row)
        add(row, e_rows[c], row)
    return A, G



def _forward_scaled_batch(lps: Sequence[np.ndarray], labels: Sequence[tuple[int, ...]]) -> list[float | None]:
    """The scaled forward (``log p(l|y)``, probabilities frame by frame) of many (log-probs,
    labelling) pairs at once, as one recursion: the items' trellises side by side in one 1-D
    buffer (two zero states between items), frames aligned at the end (an item with fewer frames
    starts later, held in its first blank state until then), so each frame costs the same five
    numpy calls for the whole batch. Certified item by item (``None`` where refused): a second
    row runs the same recursion with every value lifted to at least ``_SCALED_FLOOR`` (an upper
    bound, whatever the first lost to underflow), and the two must agree to ``_SCALED_RTOL``;
    emissions below ``exp(_SCALED_MIN_LOG)`` of their frame's best (``-inf`` included) are
    refused at once. lps: (T_i, C) checked, T_i > 0; labels: non-empty. Emissions are taken
    relative to each frame's best class."""
    N = len(lps)
    lens = np.fromiter((len(lab) for lab in labels), dtype=np.intp, count=N)
    frames = np.fromiter((lp.shape[0] for lp in lps), dtype=np.intp, count=N)
    T, S = int(frames.max()), 2 * int(lens.max()) + 1
    B = 2 * (S + 2)  # one item's block: two zero states, then S states, exact and bound interleaved
    ext, skip, _ = _extend(labels)  # (N, S) each
    allp = np.concatenate(lps)  # (sum T_i, C)
    top = allp.max(axis=1)  # (sum T_i,)
    starts = np.concatenate(([0], np.cumsum(frames)[:-1]))
    # (N, T) row of allp per item and aligned frame (rows before an item's start: any, masked)
    rows = np.maximum(starts[:, None] + np.arange(T)[None, :] - (T - frames)[:, None], 0)
    rel = allp[rows[:, :, None], ext[:, None, :]] - top[rows][:, :, None]  # (N, T, S)
    live = np.arange(T)[None, :, None] >= (T - frames)[:, None, None]  # the item's own frames
    real = np.arange(S)[None, None, :] < (2 * lens + 1)[:, None, None]  # the item's own states
    rel = np.where(live & real, rel, 0.0)
    ok = rel.min(axis=(1, 2)) >= _SCALED_MIN_LOG  # (N,) refused at once: -inf or extreme
    rescale = _rescale_frames(np.maximum(rel.min(axis=(0, 2)), _SCALED_MIN_LOG))
    emit3 = np.exp(rel)
    emit3 *= live & real
    emit3[:, :, 0] += ~live[:, :, 0]  # before an item starts, its first blank holds
    emit = np.zeros((T, N, S + 2, 2))
    emit[:, :, 2:, :] = emit3.transpose(1, 0, 2)[..., None]
    emit_rows = list(emit.reshape(T, N * B))
    floor = np.zeros((N, S + 2, 2))
    floor[:, 2:, 1] = np.where(real[:, 0, :], _SCALED_FLOOR, 0.0)
    floor_f = floor.reshape(-1)
    skip_3 = np.zeros((N, S + 2, 2))
    skip_3[:, 2:, :] = skip[:, :, None]
    skip_f = skip_3.reshape(-1)
    buf = np.zeros(N * B + 4)
    cur, one, two = buf[4:], buf[2:-2], buf[:-4]
    blocks = cur.reshape(N, S + 2, 2)
    blocks[:, 2, :] = 1.0  # before the first frame: every item in its first blank, probability 1
    cur_lo = blocks[:, 2:, 0]  # (N, S)
    scale = np.ones((T, N))
    v = np.empty(N * B)
    jump = np.empty(N * B)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # refused items only
        for t in range(T):  # hot loop: five numpy calls per frame for the whole batch
            np.add(cur, one, v)
            np.multiply(two, skip_f, jump)
            v += jump
            v *= emit_rows[t]
            np.fmax(v, floor_f, out=cur)  # NaN (inf * 0: a state that is exactly 0) to the floor
            if rescale[t]:
                c = np.maximum(cur_lo.max(axis=1), 1e-300)  # (N,); 0 only where refused anyway
                scale[t] = c
                blocks /= c[:, None, None]
    n = np.arange(N)
    last = blocks[n, 2 * lens + 2] + blocks[n, 2 * lens + 1]  # (N, 2): exact, bound
    logs = np.log(scale).sum(axis=0) + np.add.reduceat(top, starts)
    out: list[float | None] = []
    for i, (lo, hi) in enumerate(last.tolist()):
        good = bool(ok[i]) and 0.0 < lo and hi <= lo * (1.0 + _SCALED_RTOL)
        out.append(float(logs[i]) + math.log(lo) if good else None)
    return out


def _score_and_align(
    lp: np.ndarray, ids: tuple[int, ...], score: bool = True, align: bool = True
) -> tuple[float, float, tuple[tuple[int, int], ...]]:
    """For a labelling on checked log-probs: ``log p(ids|lp)`` (forward; with ``score``), and the
    best alignment's log-prob and per-token spans (Viterbi; with ``align``). What is not asked
    for is returned as ``-inf`` or ``()``."""
    T = lp.shape[0]
    if T == 0:
        return (0.0, 0.0, ()) if not ids else (NEG_INF, NEG_INF, ())
    if not ids:  # only the blank: one path
        ext, skip = np.zeros((1, 1), dtype=np.intp), np.zeros((1, 1), dtype=bool)
        A, _, cut = _trellis(lp, ext, skip, viterbi=False)
        ll = float(A[0, 0, T - 1])
        if cut is not None and ll < cut:
            ll = NEG_INF
        return (ll if score else NEG_INF), (ll if align else NEG_INF), ()
    lab = _Labelling(lp, ids)
    ll = lab.forward() if score else NEG_INF
    if not align:
        return ll, NEG_INF, ()
    best, spans = lab.viterbi()
    return ll, best, spans


def _backtrace(A: np.ndarray, G: np.ndarray, can_skip: Sequence[bool], cut: float | None) -> tuple[float, Spans]:
    """The best alignment from a Viterbi trellis (A, G: (S, T)) -> (its log-prob, spans)."""
    S, T = A.shape
    s = S - 1
    if S > 1 and A[S - 2, T - 1] > A[S - 1, T - 1]:
        s = S - 2
    best = float(A[s, T - 1])
    if best == NEG_INF or (cut is not None and best < cut):
        return NEG_INF, ()
    spans: list[tuple[int, int]] = [(0, 0)] * (S // 2)
    t = T - 1
    g_rows = list(G)
    while True:
        k = int(g_rows[s][: t + 1].argmax())  # frame where the path entered state s
        if s % 2 == 1:
            spans[(s - 1) // 2] = (k, t + 1)
        if k == 0:
            break
        if can_skip[s] and A.item(s - 2, k - 1) > A.item(s - 1, k - 1):
            s -= 2
        else:
            s -= 1
        t = k - 1
    return best, tuple(spans)


def _viterbi_batch(lps: Sequence[np.ndarray], labels: Sequence[tuple[int, ...]]) -> list[Spans]:
    """``_viterbi`` spans of many (log-probs, labelling) pairs, the state loop shared: each item's
    emission sums as its own (same clamp, same floats), padded to the longest item (states and
    frames after an item's own are never read: the recursion runs forward in both), so every
    value, hence every span, is the single computation's. lps: T_i > 0; labels non-empty."""
    N = len(lps)
    ext, skip, lens = _extend(labels)  # (N, S)
    S, T = ext.shape[1], max(lp.shape[0] for lp in lps)
    cum, prev = np.zeros((S, N, T)), np.zeros((S, N, T))
    cuts = []
    for i, lp in enumerate(lps):
        n = 2 * int(lens[i]) + 1
        c, p, cut = _emission_sums(lp, ext[i : i + 1, :n])  # (n, T_i) each
        cum[:n, i, : lp.shape[0]] = c
        prev[:n, i, : lp.shape[0]] = p
        cuts.append(cut)
    A, G = _trellis_rows(cum, prev, skip, viterbi=True)
    out = []
    for i, lp in enumerate(lps):
        n, frames = 2 * int(lens[i]) + 1, lp.shape[0]
        out.append(_backtrace(A[:n, i, :frames], G[:n, i, :frames], skip[i, :n].tolist(), cuts[i])[1])
    return out


def _viterbi(lp: np.ndarray, ids: tuple[int, ...]) -> tuple[float, tuple[tuple[int, int], ...]]:
    """Best alignment of ``ids`` on checked log-probs -> (its log-prob, per-token spans)."""
    if ids and lp.shape[0]:
        return _Labelling(lp, ids).viterbi()
    _, best, spans = _score_and_align(lp, ids, score=False)
    return best, spans


def viterbi_align(log_probs: np.ndarray, ids: Sequence[int]) -> tuple[float, tuple[tuple[int, int], ...]]:
    """Best (Viterbi) alignment of a labelling to ``(T, C)`` log-probs.

    Returns its log-probability and, per token, the frames ``(start, end)`` (end exclusive)
    that emit it; ``(-inf, ())`` when no alignment fits.
    """
    lp = check_log_probs(log_probs)
    return _viterbi(lp, _check_ids(ids, lp.shape[1]))


_BATCH_CELLS = 1 << 20  # items * frames * states per batched scaled forward (~8 MB per array)


class _BatchPasses:
    """The exact scores and the Viterbi spans of a batch's results, each computed for all items
    together on the first access of one: scores by ``_forward_scaled_batch`` (an item it refuses
    gets its own), spans by ``_viterbi_batch``; in chunks of similar lengths that bound memory."""

    def __init__(self) -> None:
        self.items: dict[str, list[tuple[np.ndarray, tuple[int, ...]]]] = {"score": [], "spans": []}
        self.done: dict[str, list[Any]] = {}

    def add(self, what: str, lp: np.ndarray, ids: tuple[int, ...]) -> Callable[[], Any]:
        """Register a labelling (T > 0, non-empty) for ``what`` ("score" or "spans"): a callable
        that returns it."""
        k = len(self.items[what])
        self.items[what].append((lp, ids))
        return lambda: self.get(what, k)

    def get(self, what: str, k: int) -> Any:
        if what not in self.done:
            items = self.items[what]
            self.done[what] = self._scores(items) if what == "score" else self._spans(items)
            self.items[what] = []
        return self.done[what][k]

    @staticmethod
    def _chunks(items: list[tuple[np.ndarray, tuple[int, ...]]]) -> list[list[int]]:
        """Indices in chunks of similar lengths, each padded to at most _BATCH_CELLS cells."""
        order = sorted(range(len(items)), key=lambda i: (items[i][0].shape[0], len(items[i][1])))
        chunks = []
        i = 0
        while i < len(order):
            j, states = i, 0
            while j < len(order):
                lp, ids = items[order[j]]
                wider = max(states, 2 * len(ids) + 1)
                if j > i and (j + 1 - i) * lp.shape[0] * wider > _BATCH_CELLS:
                    break
                j, states = j + 1, wider
            chunks.append(order[i:j])
            i = j
        return chunks

    def _scores(self, items: list[tuple[np.ndarray, tuple[int, ...]]]) -> list[float]:
        found: list[float | None] = [None] * len(items)
        for chunk in self._chunks(items):
            if len(chunk) > 1:
                for k, sc in zip(chunk, _forward_scaled_batch([items[k][0] for k in chunk], [items[k][1] for k in chunk])):
                    found[k] = sc
        return [sc if sc is not None else _Labelling(lp, ids).forward() for sc, (lp, ids) in zip(found, items)]

    def _spans(self, items: list[tuple[np.ndarray, tuple[int, ...]]]) -> list[Spans]:
        out: list[Spans] = [()] * len(items)
        for chunk in self._chunks(items):
            for k, sp in zip(chunk, _viterbi_batch([items[k][0] for k in chunk], [items[k][1] for k in chunk])):
                out[k] = sp
        return out


def _result(
    lp: np.ndarray,
    ids: tuple[int, ...],
    alphabet: Alphabet,
    greedy: tuple[tuple[int, ...], tuple[tuple[int, int], ...], float] | None = None,
    score: float | None = None,
    batch: _BatchPasses | None = None,
) -> DecodeResult:
    """DecodeResult for a labelling: exact forward score (unless given; with ``batch``, computed
    with the batch's others, and so are the Viterbi spans); spans from the greedy
    path when the labelling is the greedy one (the best path is then its best alignment), else
    from a Viterbi pass. Each pass is deferred to the first access of what it gives (the
    forward to ``score`` / ``confidence``, the Viterbi to ``spans``; ``DecodeResult.deferred``),
    so ``lp`` must not change afterwards (see ``_owned``)."""
    if greedy is None:
        greedy = _greedy(lp)
    text = alphabet.decode(ids)
    if score == NEG_INF:
        return DecodeResult.make(text, ids, score, greedy[1] if ids == greedy[0] else ())
    if not (ids and lp.shape[0]):  # the empty labelling or no frames: one path at most
        empty: float | Callable[[], float] = score if score is not None else lambda: _score_and_align(lp, ids, align=False)[0]
        return DecodeResult.deferred(text, ids, empty, greedy[1] if ids == greedy[0] else ())
    shared: list[_Labelling] = []  # built on the first access of either pass, then shared

    def labelling() -> _Labelling:
        if not shared:
            shared.append(_Labelling(lp, ids))
        return shared[0]

    forward: float | Callable[[], float]
    if score is not None:
        forward = score
    elif batch is not None:
        forward = batch.add("score", lp, ids)
    else:
        forward = lambda: labelling().forward()  # noqa: E731
    if ids == greedy[0]:
        return DecodeResult.deferred(text, ids, forward, greedy[1])
    if batch is not None:
        return DecodeResult.deferred(text, ids, forward, batch.add("spans", lp, ids))
    return DecodeResult.deferred(text, ids, forward, lambda: labelling().viterbi()[1])


def _owned(lp: np.ndarray, source: object) -> np.ndarray:
    """``lp`` (checked from ``source``), copied if it shares memory with the caller's array:
    a deferred result reads it later, after the caller may have reused its buffer."""
    if isinstance(source, np.ndarray) and np.may_share_memory(lp, source):
        copied: np.ndarray = lp.copy()
        return copied
    return lp


# ---------------------------------------------------------------------------------- beam search
class PrefixScorer(Protocol):
    """Adds log-domain bonuses to prefixes during beam search (language model, hotwords,
    lexicon constraints). States must be hashable; equal states must give equal bonuses."""

    def initial(self) -> Hashable:
        """State of the empty prefix."""
        ...

    def bonus(self, state: Hashable) -> np.ndarray:
        """(C,) log bonus for appending each class to a prefix in ``state`` (``-inf`` forbids it;
        entry 0, the blank, is ignored)."""
        ...

    def advance(self, state: Hashable, cls: int) -> Hashable:
        """State after appending class ``cls``."""
        ...

    def final(self, state: Hashable) -> float:
        """Log bonus for ending the labelling in ``state`` (``-inf``: not a valid end)."""
        ...


class _Table:
    """Bonus vectors of scorer states, stacked so a beam gathers them with one index."""

    def __init__(self, scorer: PrefixScorer, num_classes: int) -> None:
        self.scorer = scorer
        self.rows: dict[Hashable, int] = {}
        self.data = np.empty((64, num_classes))
        self.finals: list[float] = []

    def row(self, state: Hashable) -> int:
        r = self.rows.get(state)
        if r is None:
            r = len(self.rows)
            if r == len(self.data):
                self.data = np.concatenate((self.data, np.empty_like(self.data)))
            self.data[r] = self.scorer.bonus(state)
            self.data[r, BLANK] = 0.0  # the blank column ranks prefixes staying the same: no bonus
            self.finals.append(float(self.scorer.final(state)))
            self.rows[state] = r
        return r


def _prefix_beam_search(
    lp: np.ndarray,
    beam_width: int,
    prune_log_prob: float | None = None,
    scorer: PrefixScorer | None = None,
) -> tuple[tuple[int, ...], float] | None:
    """CTC prefix beam search on checked ``(T, C)`` log-probs.

    Keeps the ``beam_width`` prefixes of highest probability (summed over alignments, plus the
    scorer's bonuses) after every frame, and prunes nothing else: the result is that of the
    textbook prefix beam search (up to ties). Per frame, for the K prefixes of the beam:

    * the prefixes staying the same (a blank, or their last class again) are K-vectors; they
      include the mass a parent sends to its child when both are in the beam (the pairs
      ``mc``, ``msrc``, ``mflat``), so that extension is never a new entry; one gather of the
      frame's row (``gidx``) and one add give both their blank and their repeat terms;
    * if the beam is full and even the best prefix extended by the best class of the frame
      ranks below every staying prefix, no new prefix can enter and the frame ends there;
    * otherwise a ``(3, K, C)`` array (one buffer reused while the beam is full) holds every
      entry, as log-probs in total, of ending in a non-blank and in a blank: column ``c > 0`` is prefix i extended by class ``c``, column 0
      (the blank never extends a prefix) prefix i staying. If no extension beats the last
      staying prefix the frame ends too (about half of all frames end early on word- and
      speech-like input); else the next beam is the top ``beam_width`` totals (one
      ``argpartition`` among the entries that rank at least with the last staying prefix),
      and only those become prefixes, in Python.

    ``prune_log_prob`` (optional, inexact) skips classes below that log-prob when creating new
    prefixes (mass flowing into prefixes already in the beam is always added).

    Returns (ids, acoustic log-prob as tracked by the beam) of the best final prefix, or None
    when the scorer accepts no final prefix.
    """
    # A hot loop, kept as one function on purpose: splitting the per-frame body into helper
    # calls costs speed (a call per frame and the beam's state passed through it), and this
    # is the decoder's inner loop. tests/test_layout.py exempts functions marked like this.
    T, C = lp.shape
    B = beam_width
    # (T, C + 1): the non-blank log-probs (the blank never extends a prefix, its column is -inf),
    # and in column C the blank's, so that one gather per frame (gidx) gives each staying
    # prefix's two terms: the blank, and its own last class.
    lpz = np.empty((T, C + 1))
    lpx = lpz[:, :C]  # (T, C)
    lpx[:] = lp
    lpx[:, BLANK] = NEG_INF
    lpz[:, C] = lp[:, BLANK]
    lpe = lpx if prune_log_prob is None else np.where(lpx >= prune_log_prob, lpx, NEG_INF)
    best_class = lpe.max(axis=1).tolist()  # (T,) best log-prob of a new prefix's last class
    offsets = np.arange(B) * C  # (B,) flat index of column 0 of each beam row
    # The (3, B, C) entries of a full beam, reused from frame to frame (planes: total, ending in
    # a non-blank, in a blank); an extension never ends in a blank, so plane 2 stays -inf but
    # for column 0 (the staying prefixes), rewritten every frame.
    Xfull = np.full((3, B, C), NEG_INF)
    gbuf = np.full((2, B), C, dtype=np.intp)  # row 0 the blank's column of lpz, row 1 last classes

    # A prefix is named by an integer: the empty prefix is 0, and prefix p extended by class c is
    # p * C + c (its digits in base C are its classes, all nonzero). So equal prefixes get equal
    # names however they were reached, the parent of n is n // C and its last class n % C.
    # The beam: K prefixes, their last class (0 for the empty prefix) and log-probs.
    nodes = [0]
    last_l = [BLANK]
    gbuf[1, 0] = BLANK
    gidx = gbuf[:, :1]  # (2, K): the columns of lpz gathered per frame
    last = gidx[1]  # (K,) each prefix's last class
    lastflat = last  # (K,) flat index of each prefix's own last class in the (K, C) matrix
    st = np.array([[0.0], [NEG_INF], [0.0]])  # (3, K): log p in total, ending in non-blank, in blank
    # Pairs of beam rows where the child is the parent plus one class: extending the parent by
    # that class adds to the child, not to a new prefix. All (M,): mc child rows, ml the class,
    # msrc where the parent's mass comes from in st.ravel() (its total, or only its blank-ending
    # part if the class repeats its last one), mflat the entry parent * C + class.
    mc = ml = msrc = mflat = None

    table = _Table(scorer, C) if scorer is not None else None
    if table is not None:
        node_state = {0: scorer.initial()}  # type: ignore[union-attr]  # prefix -> scorer state (scorer is set with table)
        node_row = {0: table.row(node_state[0])}  # prefix -> table row of its state
        vr_l = [node_row[0]]  # (K,) table row of each prefix's scorer state
        nb = np.zeros(1)  # (K,) accumulated bonus of each prefix

    # The frame's work up to the choice of the next beam as one compiled call (the fast extra;
    # the same operations, so the same floats), without a scorer or pruning.
    compiled = kernels.get() if table is None and prune_log_prob is None else None
    no_pairs = np.empty(0, dtype=np.intp)

    for t in range(T):
        K = len(nodes)
        full = table is None and K == B
        if compiled is not None:
            stay = np.empty((3, K))
            X = Xfull if K == B else np.full((3, K, C), NEG_INF)
            pairs = (mc, ml, msrc) if mc is not None else (no_pairs, no_pairs, no_pairs)
            going, smin = compiled.beam_frame(st, lpz[t], gidx, stay, *pairs, best_class[t], full, lpe[t], X,
                                              lastflat, mflat if mc is not None else no_pairs)
            if not going:
                st = stay
                continue
            Xf = X.reshape(3, K * C)
            ext = Xf[0]
        else:
            ptot = st[0]
            lz = lpz[t]  # (C + 1,)
            g = lz[gidx]  # (2, K): the blank, and each prefix's last class at t

            # The prefixes staying the same: (3, K) total, ending in non-blank, in blank. Rows 2 and 1
            # at once: ending in blank = total + blank, in non-blank = non-blank + last class again.
            stay = np.empty((3, K))
            np.add(st[:2], g, out=stay[2:0:-1])
            stay_nb = stay[1]
            if mc is not None:
                contrib = st.reshape(-1)[msrc] + lz[ml]  # (M,) parents extended by their child's class
                stay_nb[mc] = np.logaddexp(stay_nb[mc], contrib)
            stot = stay[0]
            np.logaddexp(stay[2], stay_nb, out=stot)
            if full:
                smin = stot[stot.argmin()]  # the last staying prefix: a new one must beat it
                if ptot[ptot.argmax()] + best_class[t] < smin:
                    st = stay  # even the best prefix extended by the best class cannot
                    continue

            # Every entry: (3, K, C) planes, column 0 the prefixes staying, column c > 0 extended by c.
            X = Xfull if K == B else np.full((3, K, C), NEG_INF)
            Xf = X.reshape(3, K * C)
            ext = Xf[0]  # (K * C,) flat view of the totals
            np.add(ptot[:, None], lpe[t], out=X[0])  # prefix i extended by class c
            # A repeated class extends the prefix only after a blank.
            ext[lastflat] = st[2] + (g[1] if prune_log_prob is None else lpe[t][last])
            if mc is not None:
                ext[mflat] = NEG_INF  # already added to the child in the beam
            if full and ext[ext.argmax()] < smin:
                st = stay  # no extension can
                continue
            X[1] = X[0]
            X[:, :, 0] = stay

        if table is None:
            rank = ext
        else:
            bonus = (nb[:, None] + table.data[vr_l]).reshape(-1)  # (K * C,) bonus of each entry
            rank = ext + bonus
        n = K * C
        possible = False  # known to hold no impossible entry
        if n <= B:
            top = np.arange(n)
        elif K == B:  # only entries ranking at least with the last staying prefix can enter
            if not full:
                srank = stot + nb  # (K,) rank of the staying prefixes
                smin = srank[srank.argmin()]
            top = (rank >= smin).nonzero()[0]  # (>= B,)
            if top.size > B:
                top = top[rank[top].argpartition(top.size - B)[top.size - B :]]  # (B,) new beam
            possible = smin > NEG_INF
        else:
            top = rank.argpartition(n - B)[n - B :]
        top_l = top.tolist()
        if not possible and NEG_INF in rank[top].tolist():  # impossible entries (fewer than B possible) stay out
            top = top[rank[top] > NEG_INF]
            if top.size == 0:
                return None  # only with a scorer that forbids everything
            top_l = top.tolist()
        st = Xf[:, top]  # (3, K')
        if table is not None:
            nb = bonus[top]

        # Materialize the new beam: prefixes, last classes, scorer rows.
        new_nodes: list[int] = []
        new_last: list[int] = []
        for x in top_l:
            i, c = divmod(x, C)
            if c == 0:  # a prefix of the beam staying the same
                new_nodes.append(nodes[i])
                new_last.append(last_l[i])
            else:  # prefix i extended by class c
                new_nodes.append(nodes[i] * C + c)
                new_last.append(c)
        nodes, last_l = new_nodes, new_last
        if table is not None:
            for nd in nodes:
                if nd not in node_row:
                    state = scorer.advance(node_state[nd // C], nd % C)  # type: ignore[union-attr]
                    node_state[nd] = state
                    node_row[nd] = table.row(state)
            vr_l = [node_row[nd] for nd in nodes]
        K = len(nodes)
        gidx = gbuf[:, :K]
        last = gidx[1]
        last[:] = last_l
        lastflat = offsets[:K] + last

        # Parent-child pairs within the new beam.
        pos = {nd: j for j, nd in enumerate(nodes)}
        mcl: list[int] = []
        mll: list[int] = []
        msl: list[int] = []
        mfl: list[int] = []
        for j, nd in enumerate(nodes):
            q = pos.get(nd // C) if nd else None
            if q is not None:
                c = last_l[j]
                mcl.append(j)
                mll.append(c)
                # The parent's mass in st.ravel(): row 2 (blank-ending) for a repeat, else row 0.
                msl.append(2 * K + q if last_l[q] == c else q)
                mfl.append(q * C + c)
        if mcl:
            mc, ml, msrc, mflat = np.array(mcl + mll + msl + mfl, dtype=np.intp).reshape(4, -1)
        else:
            mc = None

    rank = st[0]
    if table is not None:
        rank = rank + nb + np.array([table.finals[r] for r in vr_l])
    best = int(np.argmax(rank))
    if rank[best] == NEG_INF:
        return None
    nd = nodes[best]
    ids: list[int] = []
    while nd:
        nd, c = divmod(nd, C)
        ids.append(c)
    return tuple(reversed(ids)), float(st[0, best])


def _prefix_beam_search_batch(lps: Sequence[np.ndarray], beam_width: int) -> list[tuple[tuple[int, ...], float]]:
    """``_prefix_beam_search`` (no scorer, no pruning) of N checked ``(T_i, C)`` arrays, T_i > 0,
    as one search: per frame the staying prefixes, the early-exit tests and the ``(3, B, C)``
    entries of every utterance are computed together (beams padded to ``beam_width`` with
    impossible rows), and only the utterances whose beam can change pick their new beam and
    materialize it, with the same calls as the single search. Same results, bit for bit."""
    # A hot loop, kept as one function on purpose (as _prefix_beam_search): the per-frame body
    # shares its numpy calls across utterances, and helper calls per frame would cost speed.
    N, B, C = len(lps), beam_width, lps[0].shape[1]
    order = sorted(range(N), key=lambda i: -lps[i].shape[0])  # longest first: active = a prefix
    Ts = [lps[i].shape[0] for i in order]
    lpz = np.full((N, Ts[0], C + 1), NEG_INF)  # (N, T, C + 1) as in _prefix_beam_search
    for u, i in enumerate(order):
        lpz[u, : Ts[u], :C] = lps[i]
        lpz[u, : Ts[u], C] = lps[i][:, BLANK]
    lpz[:, :, BLANK] = NEG_INF
    lpx = lpz[:, :, :C]
    best_class = lpx.max(axis=2).T.copy()  # (T, N) best log-prob of a new prefix's last class
    offsets = np.arange(B) * C
    W = 3 * B  # stride of an utterance in st / stay
    st = np.full((N, 3, B), NEG_INF)  # (N, 3, B): total, ending in non-blank, in blank; row 0 padded
    st[:, 0, 0] = st[:, 2, 0] = 0.0
    gidx = np.full((N, 2, B), C, dtype=np.intp)  # per utterance as in _prefix_beam_search
    gidx[:, 1] = BLANK
    gbase = (np.arange(N) * (C + 1))[:, None, None]
    ks = [1] * N
    nodes: list[list[int]] = [[0] for _ in range(N)]
    lasts: list[list[int]] = [[BLANK] for _ in range(N)]
    lastflat = gidx[:, 1] + offsets  # (N, B) flat index of each prefix's own last class
    pairs: list[tuple[list[int], ...]] = [() for _ in range(N)]  # per utterance: its pairs' mc, ml, ms, mf
    X = np.full((N, 3, B, C), NEG_INF)  # every entry, planes as st (plane 2 stays -inf but column 0)
    # The parent-child pairs of all utterances (see _prefix_beam_search), as global indices into
    # stay, lpz[:, t], st and X: mc, ml, ms, mf; None when no beam holds a pair.
    mc: np.ndarray | None = None
    ml = ms = mf = np.empty(0, dtype=np.intp)
    for t in range(Ts[0]):
        n = sum(1 for T in Ts if T > t)  # active utterances: 0..n-1
        stn = st[:n]
        lz = lpz[:n, t]  # (n, C + 1)
        g = lz.reshape(-1)[gbase[:n] + gidx[:n]]  # (n, 2, B)
        stay = np.empty((n, 3, B))
        np.add(stn[:, :2], g, out=stay[:, 2:0:-1])
        if mc is not None:
            stay_f = stay.reshape(-1)
            keep = mc < n * W  # pairs of active utterances
            mcn, mln, msn = mc[keep], ml[keep], ms[keep]
            contrib = stn.reshape(-1)[msn] + lz.reshape(-1)[mln]
            stay_f[mcn] = np.logaddexp(stay_f[mcn], contrib)
        stot = stay[:, 0]
        np.logaddexp(stay[:, 2], stay[:, 1], out=stot)
        full = np.array([k == B for k in ks[:n]])
        smin = stot.min(axis=1)  # (n,) used only where the beam is full (no padding)
        ptot = stn[:, 0]
        # Which beams can change: not full, or (the early exits of _prefix_beam_search, negated)
        # the best prefix extended by the best class, and then some extension, reaches smin.
        go = ~full | (ptot.max(axis=1) + best_class[t, :n] >= smin)
        E = X[:n, 0]  # (n, B, C) every extension's total
        np.add(ptot[:, :, None], lpx[:n, t, None, :], out=E)
        Ef = E.reshape(n, B * C)
        Ef[np.arange(n)[:, None], lastflat[:n]] = stn[:, 2] + g[:, 1]
        if mc is not None:
            X.reshape(-1)[mf[keep]] = NEG_INF  # (X is contiguous, Ef is not)
        go &= ~full | (Ef.max(axis=1) >= smin)
        X[:n, 1] = E
        X[:n, :, :, 0] = stay
        Xf = X.reshape(N, 3, B * C)
        st[:n] = stay
        for u in np.flatnonzero(go).tolist():
            K = ks[u]
            rank = Ef[u, : K * C]
            if K * C <= B:
                top = np.arange(K * C)
            elif K == B:
                top = (rank >= smin[u]).nonzero()[0]
                if top.size > B:
                    top = top[rank[top].argpartition(top.size - B)[top.size - B :]]
            else:
                top = rank.argpartition(K * C - B)[K * C - B :]
            if K < B or not smin[u] > NEG_INF:
                top = top[rank[top] > NEG_INF]  # impossible entries stay out
            top_l = top.tolist()
            K2 = len(top_l)
            st[u, :, :K2] = Xf[u][:, top]
            if K2 < B:
                st[u, :, K2:] = NEG_INF
            old_nodes, old_last = nodes[u], lasts[u]
            nodes[u] = nds = [old_nodes[x // C] if x % C == 0 else old_nodes[x // C] * C + x % C for x in top_l]
            lasts[u] = last_u = [old_last[x // C] if x % C == 0 else x % C for x in top_l]
            ks[u] = K2
            gidx[u, 1, :K2] = last_u
            lastflat[u, :K2] = [k * C + c for k, c in enumerate(last_u)]
            pos = {nd: j for j, nd in enumerate(nds)}
            mcl: list[int] = []
            mll: list[int] = []
            msl: list[int] = []
            mfl: list[int] = []
            for j, nd in enumerate(nds):
                q = pos.get(nd // C) if nd else None
                if q is not None:
                    c = last_u[j]
                    mcl.append(u * W + B + j)
                    mll.append(u * (C + 1) + c)
                    msl.append(u * W + (2 * B if last_u[q] == c else 0) + q)
                    mfl.append(u * 3 * B * C + q * C + c)
            pairs[u] = (mcl, mll, msl, mfl) if mcl else ()
            mc = None
        if mc is None:
            flat = [i for k in range(4) for p in pairs if p for i in p[k]]
            if flat:
                mc, ml, ms, mf = np.array(flat, dtype=np.intp).reshape(4, -1)
    out: list[tuple[tuple[int, ...], float]] = [((), 0.0)] * N
    for u, i in enumerate(order):
        tot = st[u, 0, : ks[u]]
        best = int(np.argmax(tot))
        nd = nodes[u][best]
        ids: list[int] = []
        while nd:
            nd, c = divmod(nd, C)
            ids.append(c)
        out[i] = (tuple(reversed(ids)), float(tot[best]))
    return out


class _ColumnScorer:
    """A ``PrefixScorer`` seen through a subset of the classes: column ``j`` is class ``keep[j]``."""

    def __init__(self, scorer: PrefixScorer, keep: np.ndarray) -> None:
        self.scorer, self.keep = scorer, keep

    def initial(self) -> Hashable:
        return self.scorer.initial()

    def bonus(self, state: Hashable) -> np.ndarray:
        out: np.ndarray = self.scorer.bonus(state)[self.keep]
        return out

    def advance(self, state: Hashable, cls: int) -> Hashable:
        return self.scorer.advance(state, int(self.keep[cls]))

    def final(self, state: Hashable) -> float:
        return self.scorer.final(state)


def _beam(
    lp: np.ndarray,
    beam_width: int,
    prune_log_prob: float | None = None,
    scorer: PrefixScorer | None = None,
) -> tuple[tuple[int, ...], float] | None:
    """``_prefix_beam_search``, on fewer classes when pruning: a class below ``prune_log_prob`` at
    every frame can never enter a prefix, so the search runs on the blank and the other classes
    only (the same result up to ties, and with 18,710 classes ~100x less work per frame)."""
    if prune_log_prob is None:
        return _prefix_beam_search(lp, beam_width, None, scorer)
    keep = np.flatnonzero((lp >= prune_log_prob).any(axis=0))  # (K',) sorted
    if keep.size and keep[0] != BLANK:
        keep = np.concatenate(([BLANK], keep))
    elif not keep.size:
        keep = np.array([BLANK])
    if keep.size == lp.shape[1]:
        return _prefix_beam_search(lp, beam_width, prune_log_prob, scorer)
    found = _prefix_beam_search(lp[:, keep], beam_width, prune_log_prob, None if scorer is None else _ColumnScorer(scorer, keep))
    if found is None:
        return None
    return tuple(int(keep[i]) for i in found[0]), found[1]


def beam_search(
    log_probs: np.ndarray,
    alphabet: Alphabet,
    beam_width: int = 16,
    *,
    prune_log_prob: float | None = None,
    logits: bool = False,
    scorer: PrefixScorer | None = None,
) -> DecodeResult:
    """CTC prefix beam search on ``(T, C)`` log-probs.

    Exact up to the beam: with ``beam_width`` at least the number of distinct prefixes it returns
    the most probable labelling (summed over alignments). ``beam_width=1`` without a scorer is
    greedy decoding (the best path), by definition. ``prune_log_prob`` (e.g. -10) skips classes
    below that log-prob when growing prefixes: faster on flat outputs, no longer exact.
    ``scorer`` adds bonuses (LM, hotwords, lexicon constraints; see ``CTCDecoder``).
    """
    if int(beam_width) < 1:
        raise ValueError(f"beam_width must be >= 1, got {beam_width}")
    lp = _owned(check_log_probs(log_probs, alphabet.num_classes, logits=logits), log_probs)
    greedy = _greedy(lp)
    if beam_width == 1 and scorer is None:
        return DecodeResult.make(alphabet.decode(greedy[0]), greedy[0], greedy[2], greedy[1])
    found = _beam(lp, int(beam_width), prune_log_prob, scorer)
    if found is None:
        return DecodeResult.make("", (), NEG_INF, ())
    return _result(lp, found[0], alphabet, greedy)
