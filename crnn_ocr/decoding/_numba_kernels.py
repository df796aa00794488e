"""The numba kernels behind ``crnn_ocr.decoding.kernels`` (imported only through ``kernels.get()``,
so that ``import crnn_ocr`` never imports numba). Module-level functions, so numba caches their
machine code on disk between processes. See ``kernels`` for what each one replaces and why the
results are bitwise the numpy path's."""

from __future__ import annotations

import math

import numba
import numpy as np

_LOGE2 = math.log(2.0)
jit = numba.njit(cache=True, nogil=True)


@jit
def logaddexp(x: float, y: float) -> float:  # numpy's npy_logaddexp, operation for operation
    if x == y:
        return x + _LOGE2
    tmp = x - y
    if tmp > 0:
        return x + math.log1p(math.exp(-tmp))
    if tmp <= 0:
        return y + math.log1p(math.exp(tmp))
    return tmp  # NaN


@jit
def combine(x: float, y: float, viterbi: bool) -> float:  # np.maximum (no NaN here) or np.logaddexp
    if viterbi:
        return x if x >= y else y
    return float(logaddexp(x, y))


@jit
def state_rows(ET: np.ndarray, cols: np.ndarray, can_skip: np.ndarray, viterbi: bool, A: np.ndarray, G: np.ndarray) -> None:
    """``ctc._state_rows`` into A and G, (S, T) each."""
    S, T = cols.shape[0], ET.shape[1]
    for s in range(S):
        e = ET[cols[s]]
        G[s, 0] = 0.0 if s < 2 else -np.inf
        for t in range(1, T):
            if s == 0:
                G[s, t] = -np.inf
            elif can_skip[s]:
                G[s, t] = combine(A[s - 1, t - 1], A[s - 2, t - 1], viterbi) - e[t - 1]
            else:
                G[s, t] = A[s - 1, t - 1] - e[t - 1]
        acc = G[s, 0]
        A[s, 0] = acc + e[0]
        for t in range(1, T):
            acc = combine(acc, G[s, t], viterbi)
            A[s, t] = acc + e[t]


@jit
def forward_log(ET: np.ndarray, cols: np.ndarray, can_skip: np.ndarray) -> float:
    """``_Labelling.log_domain`` before its cut: the log-domain forward, S >= 2."""
    S, T = cols.shape[0], ET.shape[1]
    A = np.empty((S, T))
    G = np.empty((S, T))
    state_rows(ET, cols, can_skip, False, A, G)
    return float(logaddexp(A[S - 1, T - 1], A[S - 2, T - 1]))


@jit
def banded(A: np.ndarray, lo: np.ndarray, hi: np.ndarray, s: int, t: int) -> float:
    """A[s, t] where computed, else -inf (a cell before state s can be reached)."""
    return float(A[s, t]) if lo[s] <= t <= hi[s] else -np.inf


@jit
def viterbi(ET: np.ndarray, cols: np.ndarray, can_skip: np.ndarray, spans: np.ndarray) -> float:
    """``_state_rows`` (Viterbi) and ``ctc._backtrace`` before its cut: the best alignment's
    log-prob, its spans written into ``spans`` (L, 2) when it is finite; S >= 3.

    Only the band of cells the result can read is computed: state s from its first
    reachable frame ``lo[s]`` (before it every value is -inf, read as such) to the last
    frame ``hi[s]`` from which the end is still reachable (no later cell leads to the end
    or to the backtrace). The entry terms (``_state_rows``' G) are recomputed by the
    backtrace instead of stored. Max is exact, so the band changes no value."""
    S, T = cols.shape[0], ET.shape[1]
    lo = np.zeros(S, dtype=np.intp)
    hi = np.full(S, T - 1, dtype=np.intp)
    for s in range(2, S):
        lo[s] = min(lo[s - 1], lo[s - 2] if can_skip[s] else lo[s - 1]) + 1
    for s in range(S - 3, -1, -1):
        hi[s] = max(hi[s + 1], hi[s + 2] if can_skip[s + 2] else hi[s + 1]) - 1
    A = np.empty((S, T))
    for s in range(S):
        e = ET[cols[s]]
        acc = -np.inf
        if s < 2:
            acc = 0.0  # G[s, 0]: the path starts in state 0 or 1
            A[s, 0] = acc + e[0]
        for t in range(max(lo[s], 1), hi[s] + 1):
            if s == 0:
                g = -np.inf
            else:
                a1 = A[s - 1, t - 1] if t - 1 >= lo[s - 1] else -np.inf
                if can_skip[s]:
                    a2 = A[s - 2, t - 1] if t - 1 >= lo[s - 2] else -np.inf
                    a1 = a1 if a1 >= a2 else a2
                g = a1 - e[t - 1]
            acc = acc if acc >= g else g
            A[s, t] = acc + e[t]
    s = S - 1
    if banded(A, lo, hi, S - 2, T - 1) > banded(A, lo, hi, S - 1, T - 1):
        s = S - 2
    best = banded(A, lo, hi, s, T - 1)
    if best == -np.inf:
        return best
    t = T - 1
    while True:
        # k = np.argmax(G[s, : t + 1]), the first largest, G recomputed as _state_rows makes it (the
        # same lines as in the band above, kept inline: as a helper function, inlined or not, the
        # kernel ran 6x slower)
        e = ET[cols[s]]
        k = 0
        gk = 0.0 if s < 2 else -np.inf
        for j in range(max(lo[s], 1), t + 1):
            if s == 0:
                g = -np.inf
            else:
                a1 = A[s - 1, j - 1] if j - 1 >= lo[s - 1] else -np.inf
                if can_skip[s]:
                    a2 = A[s - 2, j - 1] if j - 1 >= lo[s - 2] else -np.inf
                    a1 = a1 if a1 >= a2 else a2
                g = a1 - e[j - 1]
            if g > gk:
                k, gk = j, g
        if s % 2 == 1:
            spans[(s - 1) // 2, 0] = k
            spans[(s - 1) // 2, 1] = t + 1
        if k == 0:
            return best
        if can_skip[s] and banded(A, lo, hi, s - 2, k - 1) > banded(A, lo, hi, s - 1, k - 1):
            s -= 2
        else:
            s -= 1
        t = k - 1


@jit
def forward_frames(emit: np.ndarray, cols: np.ndarray, can_skip: np.ndarray, rescale: np.ndarray, divisors: np.ndarray) -> float:
    """The frame loop of ``ctc._forward_frames``: the probabilities at the last frame's two
    final states, summed (``fin``); after each frame in ``rescale`` (ascending, < T - 1) the
    values are multiplied by 1 / their largest, which goes into ``divisors``. Returns -1.0
    where a largest is not positive (the caller refuses)."""
    T, S = emit.shape[0], cols.shape[0]
    cur = np.zeros(S)
    v = np.empty(S)
    cur[0] = emit[0, cols[0]]
    cur[1] = emit[0, cols[1]]
    r = 0
    for t in range(1, T):
        v[0] = cur[0] + 0.0
        for s in range(1, S):
            v[s] = cur[s] + cur[s - 1]
            if can_skip[s]:
                v[s] = v[s] + cur[s - 2]
        row = emit[t]
        for s in range(S):
            cur[s] = v[s] * row[cols[s]]
        if r < rescale.shape[0] and rescale[r] == t:
            c = cur.max()
            if not c > 0.0:
                return -1.0
            inv = 1.0 / c
            for s in range(S):
                cur[s] = cur[s] * inv
            divisors[r] = c
            r += 1
    return float(cur[S - 1] + cur[S - 2])


@jit
def beam_frame(st: np.ndarray, lz: np.ndarray, gidx: np.ndarray, stay: np.ndarray, mc: np.ndarray, ml: np.ndarray,
               msrc: np.ndarray, best_class: float, full: bool, lpe: np.ndarray, X: np.ndarray,
               lastflat: np.ndarray, mflat: np.ndarray) -> tuple[int, float]:
    """One frame of ``ctc._prefix_beam_search`` (no scorer, no pruning) up to the choice of the
    next beam: the staying prefixes into ``stay`` (3, K), and unless the frame ends early the
    entries into ``X`` (3, K, C). Returns (0 if the frame ends early, else 1; the last staying
    prefix's total, where the beam is full)."""
    K = st.shape[1]
    C = lpe.shape[0]
    for k in range(K):
        stay[2, k] = st[0, k] + lz[gidx[0, k]]  # np.add(st[:2], g, out=stay[2:0:-1])
        stay[1, k] = st[1, k] + lz[gidx[1, k]]
    for m in range(mc.shape[0]):
        j = mc[m]
        stay[1, j] = logaddexp(stay[1, j], st[msrc[m] // K, msrc[m] % K] + lz[ml[m]])  # st.ravel()[msrc]
    smin = np.inf
    top = -np.inf
    for k in range(K):
        v = logaddexp(stay[2, k], stay[1, k])
        stay[0, k] = v
        smin = min(smin, v)
        top = max(top, st[0, k])
    if full and top + best_class < smin:
        return 0, smin
    ext = X[0]  # (K, C); flat index k * C + c
    for k in range(K):
        p = st[0, k]
        for c in range(C):
            ext[k, c] = p + lpe[c]
    for k in range(K):
        ext[lastflat[k] // C, lastflat[k] % C] = st[2, k] + lz[gidx[1, k]]
    for m in range(mflat.shape[0]):
        ext[mflat[m] // C, mflat[m] % C] = -np.inf
    if full:
        best = -np.inf
        for k in range(K):
            for c in range(C):
                best = max(best, ext[k, c])
        if best < smin:
            return 0, smin
    for k in range(K):
        for c in range(C):
            X[1, k, c] = X[0, k, c]
        for q in range(3):
            X[q, k, 0] = stay[q, k]
    return 1, smin
