"""CTC primitives on numpy log-probabilities ``(T, C)``: checks, greedy and prefix beam search,
the forward algorithm and Viterbi alignment. The blank is class 0 (``crnn_ocr.alphabet.BLANK``).

Everything here is float64 numpy; nothing imports torch.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Protocol

import numpy as np

from crnn_ocr.alphabet import BLANK, Alphabet
from crnn_ocr.decoding.result import DecodeResult

NEG_INF = -np.inf
_PROB_ATOL = 1e-3  # log-probs may exceed 0 by float error; more means "not log-probabilities"
_NORM_ATOL = 1e-2  # |logsumexp| of a row above this means the rows are not normalized

__all__ = [
    "PrefixScorer",
    "batch_ctc_log_likelihood",
    "beam_search",
    "check_log_probs",
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
        return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


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
        return m + np.log(np.exp(a - m[:, None]).sum(axis=1))


def _check_ids(ids: Sequence[int], num_classes: int, what: str = "label") -> tuple[int, ...]:
    out = tuple(int(i) for i in ids)
    for pos, i in enumerate(out):
        if not 0 < i < num_classes:
            raise ValueError(f"{what} id {i} at position {pos} is outside 1..{num_classes - 1} (0 is the blank)")
    return out


# ---------------------------------------------------------------------------------- greedy
def _greedy(lp: np.ndarray) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...], float]:
    """Best path of a checked ``(T, C)`` array -> (ids, spans, path log-prob)."""
    T = lp.shape[0]
    if T == 0:
        return (), (), 0.0
    best = lp.argmax(axis=1)  # (T,)
    score = float(lp[np.arange(T), best].sum())
    change = np.empty(T, dtype=bool)
    change[0] = True
    np.not_equal(best[1:], best[:-1], out=change[1:])
    starts = np.flatnonzero(change)  # first frame of each run of equal classes
    ends = np.empty_like(starts)
    ends[:-1] = starts[1:]
    ends[-1] = T
    keep = best[starts] != BLANK
    ids = tuple(best[starts[keep]].tolist())
    spans = tuple(zip(starts[keep].tolist(), ends[keep].tolist()))
    return ids, spans, score


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
    lpc, cut = _clamp(lp)
    T, C = lpc.shape
    W, S = ext.shape
    cum = np.cumsum(lpc, axis=0).T  # (C, T): E[t]
    prev = np.empty((C, T))
    prev[:, 0] = 0.0
    prev[:, 1:] = cum[:, :-1]  # (C, T): E[t-1]
    ext_t = ext.T  # (S, W)
    cum_s = cum[ext_t]  # (S, W, T)
    prev_s = prev[ext_t]
    combine = np.maximum if viterbi else np.logaddexp
    acc = np.maximum.accumulate if viterbi else np.logaddexp.accumulate
    A = np.empty((S, W, T))
    G = np.empty((S, W, T)) if viterbi else None
    m = np.empty((W, T))
    g = np.empty((W, T))
    skip_any = skip.any(axis=0)
    skip_all = skip.all(axis=0)
    for s in range(S):
        if s == 0:
            m.fill(NEG_INF)
            m[:, 0] = 0.0  # the path starts here
        else:
            m[:, 0] = 0.0 if s == 1 else NEG_INF
            m[:, 1:] = A[s - 1, :, :-1]
            if skip_any[s]:
                prev2 = A[s - 2, :, :-1]
                if not skip_all[s]:
                    prev2 = np.where(skip[:, s, None], prev2, NEG_INF)
                combine(m[:, 1:], prev2, out=m[:, 1:])
        out = G[s] if G is not None else g
        np.subtract(m, prev_s[s], out=out)
        acc(out, axis=1, out=A[s])
        A[s] += cum_s[s]
    return A, G, cut


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
    return ll


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


def _viterbi(lp: np.ndarray, ids: tuple[int, ...]) -> tuple[float, tuple[tuple[int, int], ...]]:
    """Best alignment of ``ids`` on checked log-probs -> (its log-prob, per-token spans)."""
    T = lp.shape[0]
    L = len(ids)
    if T == 0:
        return (0.0, ()) if L == 0 else (NEG_INF, ())
    ext, skip, _ = _extend([ids])
    A, G, cut = _trellis(lp, ext, skip, viterbi=True)
    assert G is not None
    A, G, skip = A[:, 0, :], G[:, 0, :], skip[0]  # (S, T)
    S = A.shape[0]
    s = S - 1
    if S > 1 and A[S - 2, T - 1] > A[S - 1, T - 1]:
        s = S - 2
    best = float(A[s, T - 1])
    if best == NEG_INF or (cut is not None and best < cut):
        return NEG_INF, ()
    spans: list[tuple[int, int]] = [(0, 0)] * L
    t = T - 1
    while True:
        k = int(np.argmax(G[s, : t + 1]))  # frame where the path entered state s
        if s % 2 == 1:
            spans[(s - 1) // 2] = (k, t + 1)
        if k == 0:
            break
        if s >= 2 and skip[s] and A[s - 2, k - 1] > A[s - 1, k - 1]:
            s -= 2
        else:
            s -= 1
        t = k - 1
    return best, tuple(spans)


def viterbi_align(log_probs: np.ndarray, ids: Sequence[int]) -> tuple[float, tuple[tuple[int, int], ...]]:
    """Best (Viterbi) alignment of a labelling to ``(T, C)`` log-probs.

    Returns its log-probability and, per token, the frames ``(start, end)`` (end exclusive)
    that emit it; ``(-inf, ())`` when no alignment fits.
    """
    lp = check_log_probs(log_probs)
    return _viterbi(lp, _check_ids(ids, lp.shape[1]))


def _result(
    lp: np.ndarray,
    ids: tuple[int, ...],
    alphabet: Alphabet,
    greedy: tuple[tuple[int, ...], tuple[tuple[int, int], ...], float] | None = None,
    score: float | None = None,
) -> DecodeResult:
    """DecodeResult for a labelling: exact forward score (unless given); spans from the greedy
    path when the labelling is the greedy one (the best path is then its best alignment), else
    from a Viterbi pass."""
    if score is None:
        ext, skip, lens = _extend([ids])
        score = float(_forward(lp, ext, skip, lens)[0])
    if greedy is None:
        greedy = _greedy(lp)
    if ids == greedy[0]:
        spans = greedy[1]
    elif score == NEG_INF:
        spans = ()
    else:
        spans = _viterbi(lp, ids)[1]
    return DecodeResult.make(alphabet.decode(ids), ids, score, spans)


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
    scorer's bonuses) after every frame. New prefixes are only materialized when they can enter
    the beam: a new prefix's probability is exact when created (it has one parent), and every
    prefix already in the beam has at least its "stay" probability, so any candidate below the
    beam-th best stay cannot survive. This pruning never changes the result.

    ``prune_log_prob`` (optional, inexact) skips classes below that log-prob when creating new
    prefixes (mass flowing into prefixes already in the beam is always added).

    Returns (ids, acoustic log-prob as tracked by the beam) of the best final prefix, or None
    when the scorer accepts no final prefix.
    """
    T, C = lp.shape
    B = beam_width
    lpx = lp.copy()
    lpx[:, BLANK] = NEG_INF  # (T, C) non-blank log-probs
    lpe = lpx if prune_log_prob is None else np.where(lpx >= prune_log_prob, lpx, NEG_INF)
    blank = lp[:, BLANK].tolist()
    ar = np.arange(B)

    # Prefix trie: node 0 is the empty prefix.
    parent = [-1]
    symbol = [BLANK]
    children: dict[int, int] = {}  # parent * C + class -> node
    nodes = [0]  # beam entries' nodes
    st = np.array([[NEG_INF], [NEG_INF], [0.0]])  # (3, K): log p ending in blank, in non-blank, total
    st[0, 0] = 0.0
    last = np.zeros(1, dtype=np.intp)  # (K,) last class of each prefix (0 for the empty one)
    mp = mc = ml = mrep = None  # beam rows of (parent, child) pairs both in the beam

    table = _Table(scorer, C) if scorer is not None else None
    node_row: list[int] = []
    if table is not None:
        node_state = [scorer.initial()]
        node_row.append(table.row(node_state[0]))
        nb = np.zeros(1)  # (K,) accumulated bonus of each prefix
        vr = np.array(node_row, dtype=np.intp)  # (K,) table row of each prefix's state

    for t in range(T):
        K = len(nodes)
        row = lpx[t]
        rl = row[last]
        ns = np.empty((3, K))
        np.add(st[2], blank[t], out=ns[0])
        np.add(st[1], rl, out=ns[1])
        ext = np.add.outer(st[2], lpe[t])  # (K, C) extension of each prefix by each class
        ext[ar[:K], last] = st[0] + (rl if prune_log_prob is None else lpe[t][last])  # repeats need a blank
        if mp is not None:
            if prune_log_prob is None:
                contrib = ext[mp, ml]
            else:
                contrib = np.where(mrep, st[0, mp], st[2, mp]) + row[ml]
            ext[mp, ml] = NEG_INF
            ns[1, mc] = np.logaddexp(ns[1, mc], contrib)
        np.logaddexp(ns[0], ns[1], out=ns[2])

        if table is None:
            srank = ns[2]
            flat = ext.ravel()
        else:
            srank = ns[2] + nb
            flat = (ext + (nb[:, None] + table.data[vr])).ravel()
        if K >= B:
            cand = np.flatnonzero(flat > srank.min())
        else:
            cand = np.flatnonzero(flat > NEG_INF)
        n = cand.size
        if n == 0:
            st = ns
            continue
        keep = None
        if K + n > B:
            vals = np.concatenate((srank, flat[cand]))
            top = np.argpartition(vals, K + n - B)[K + n - B :]
            top.sort()
            split = int(np.searchsorted(top, K))
            keep = top[:split]
            cand = cand[top[split:] - K]
        ei, ec = np.divmod(cand, C)
        ev = ext.ravel()[cand] if table is not None else flat[cand]
        ks = K if keep is None else keep.size
        st = np.empty((3, ks + cand.size))
        st[:, :ks] = ns if keep is None else ns[:, keep]
        st[0, ks:] = NEG_INF
        st[1:, ks:] = ev
        last_new = np.concatenate((last if keep is None else last[keep], ec))

        new_nodes = list(nodes) if keep is None else [nodes[i] for i in keep.tolist()]
        new_rows: list[int] = []
        for i, c in zip(ei.tolist(), ec.tolist()):
            p = nodes[i]
            key = p * C + c
            nd = children.get(key)
            if nd is None:
                nd = len(parent)
                children[key] = nd
                parent.append(p)
                symbol.append(c)
                if table is not None:
                    state = scorer.advance(node_state[p], c)
                    node_state.append(state)
                    node_row.append(table.row(state))
            new_nodes.append(nd)
            if table is not None:
                new_rows.append(node_row[nd])
        if table is not None:
            nb = np.concatenate((nb if keep is None else nb[keep], nb[ei] + table.data[vr[ei], ec]))
            vr = np.concatenate((vr if keep is None else vr[keep], np.array(new_rows, dtype=np.intp)))
        nodes = new_nodes
        last = last_new

        pos = {nd: j for j, nd in enumerate(nodes)}
        get = pos.get
        mpl: list[int] = []
        mcl: list[int] = []
        for j, nd in enumerate(nodes):
            q = get(parent[nd])
            if q is not None:
                mpl.append(q)
                mcl.append(j)
        if mcl:
            mp = np.array(mpl, dtype=np.intp)
            mc = np.array(mcl, dtype=np.intp)
            ml = last[mc]
            if prune_log_prob is not None:
                mrep = last[mp] == ml
        else:
            mp = None

    rank = st[2]
    if table is not None:
        rank = rank + nb + np.array([table.finals[node_row[nd]] for nd in nodes])
    best = int(np.argmax(rank))
    if rank[best] == NEG_INF:
        return None
    nd = nodes[best]
    ids: list[int] = []
    while nd:
        ids.append(symbol[nd])
        nd = parent[nd]
    return tuple(reversed(ids)), float(st[2, best])


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
    lp = check_log_probs(log_probs, alphabet.num_classes, logits=logits)
    greedy = _greedy(lp)
    if beam_width == 1 and scorer is None:
        return DecodeResult.make(alphabet.decode(greedy[0]), greedy[0], greedy[2], greedy[1])
    found = _prefix_beam_search(lp, int(beam_width), prune_log_prob, scorer)
    if found is None:
        return DecodeResult.make("", (), NEG_INF, ())
    return _result(lp, found[0], alphabet, greedy)
