"""The beam search as it was before issue 20 (commit bf74447), kept verbatim as the reference
the faster search must match bit for bit: same prefixes, same tracked scores, and (through
``reference_decode``) the same texts, exact scores and spans. The exact score (forward) and the
Viterbi spans are kept as of 8453c43, the log-domain trellis computed state by state."""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np

from crnn_ocr.alphabet import BLANK, Alphabet
from crnn_ocr.decoding.ctc import NEG_INF, PrefixScorer, _greedy
from crnn_ocr.decoding.result import DecodeResult


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
    used = np.unique(ext)  # (U,) the classes of these labellings and the blank
    if 4 * used.size < lp.shape[1]:  # a large alphabet: the sums over time of the used classes only
        lp, ext = lp[:, used], np.searchsorted(used, ext)
    lpc, cut = _clamp(lp)
    T, C = lpc.shape
    W, S = ext.shape
    cum = np.cumsum(lpc, axis=0).T  # (C, T): E[t]
    prev = np.empty((C, T))
    prev[:, 0] = 0.0
    prev[:, 1:] = cum[:, :-1]  # (C, T): E[t-1]
    # One labelling (a decoded result) runs on rows (S, T), cheaper to slice than (S, 1, T).
    ext_t = ext.T if W > 1 else ext[0]  # (S, W) or (S,)
    cum_s = cum[ext_t]  # (S, W, T) or (S, T)
    prev_s = prev[ext_t]
    combine = np.maximum if viterbi else np.logaddexp
    acc = np.maximum.accumulate if viterbi else np.logaddexp.accumulate
    A = np.empty(cum_s.shape)
    G = np.empty(cum_s.shape) if viterbi else None
    m = np.empty(cum_s.shape[1:])  # (W, T) or (T,): what enters state s
    g = np.empty(cum_s.shape[1:])
    # (S,) each; numpy's stubs allow a scalar for a reduction with an axis, hence the ignores
    skip_any: list[bool] = skip.any(axis=0).tolist()  # type: ignore[assignment]
    skip_all: list[bool] = skip.all(axis=0).tolist()  # type: ignore[assignment]
    for s in range(S):
        if s == 0:
            m.fill(NEG_INF)
            m[..., 0] = 0.0  # the path starts here
        else:
            m[..., 0] = 0.0 if s == 1 else NEG_INF
            m[..., 1:] = A[s - 1, ..., :-1]
            if skip_any[s]:
                prev2 = A[s - 2, ..., :-1]
                if not skip_all[s]:
                    prev2 = np.where(skip[:, s, None], prev2, NEG_INF)
                combine(m[..., 1:], prev2, out=m[..., 1:])
        out = G[s] if G is not None else g
        np.subtract(m, prev_s[s], out=out)
        acc(out, axis=-1, out=A[s])
        A[s] += cum_s[s]
    shape = (S, W, T)
    return A.reshape(shape), None if G is None else G.reshape(shape), cut


def _score_and_align(
    lp: np.ndarray, ids: tuple[int, ...], score: bool = True, align: bool = True
) -> tuple[float, float, tuple[tuple[int, int], ...]]:
    """For a labelling on checked log-probs: ``log p(ids|lp)`` (forward; with ``score``), and the
    best alignment's log-prob and per-token spans (Viterbi; with ``align``). What is not asked
    for is returned as ``-inf`` or ``()``."""
    T = lp.shape[0]
    L = len(ids)
    if T == 0:
        return (0.0, 0.0, ()) if L == 0 else (NEG_INF, NEG_INF, ())
    S = 2 * L + 1
    states = [BLANK] * S
    states[1::2] = ids
    can_skip = [s >= 3 and s % 2 == 1 and states[s] != states[s - 2] for s in range(S)]
    ext, skip = np.array([states], dtype=np.intp), np.array([can_skip])  # (1, S)
    ll = NEG_INF
    if score:
        A, _, cut = _trellis(lp, ext, skip, viterbi=False)
        ll = float(A[S - 1, 0, T - 1]) if L == 0 else float(np.logaddexp(A[S - 1, 0, T - 1], A[S - 2, 0, T - 1]))
        if cut is not None and ll < cut:
            ll = NEG_INF
    if not align:
        return ll, NEG_INF, ()
    A, G, cut = _trellis(lp, ext, skip, viterbi=True)
    assert G is not None
    A, G = A[:, 0], G[:, 0]  # (S, T)
    s = S - 1
    if S > 1 and A[S - 2, T - 1] > A[S - 1, T - 1]:
        s = S - 2
    best = float(A[s, T - 1])
    if best == NEG_INF or (cut is not None and best < cut):
        return ll, NEG_INF, ()
    spans: list[tuple[int, int]] = [(0, 0)] * L
    t = T - 1
    while True:
        k = int(np.argmax(G[s, : t + 1]))  # frame where the path entered state s
        if s % 2 == 1:
            spans[(s - 1) // 2] = (k, t + 1)
        if k == 0:
            break
        if can_skip[s] and A[s - 2, k - 1] > A[s - 1, k - 1]:
            s -= 2
        else:
            s -= 1
        t = k - 1
    return ll, best, tuple(spans)


def _viterbi(lp: np.ndarray, ids: tuple[int, ...]) -> tuple[float, tuple[tuple[int, int], ...]]:
    """Best alignment of ``ids`` on checked log-probs -> (its log-prob, per-token spans)."""
    _, best, spans = _score_and_align(lp, ids, score=False)
    return best, spans



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
    if greedy is None:
        greedy = _greedy(lp)
    if ids == greedy[0]:
        spans = greedy[1]
        if score is None:
            score = _score_and_align(lp, ids, align=False)[0]
    elif score is None:
        score, _, spans = _score_and_align(lp, ids)
    else:
        spans = () if score == NEG_INF else _viterbi(lp, ids)[1]
    return DecodeResult.make(alphabet.decode(ids), ids, score, spans)




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
      ``mc``, ``msrc``, ``mflat``), so that extension is never a new entry;
    * if the beam is full and even the best prefix extended by the best class of the frame
      ranks below every staying prefix, no new prefix can enter and the frame ends there;
    * otherwise a ``(3, K, C)`` array holds every entry, as log-probs of ending in a blank, in a
      non-blank, and in total: column ``c > 0`` is prefix i extended by class ``c``, column 0
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
    lpx = lp.copy()
    lpx[:, BLANK] = NEG_INF  # (T, C) non-blank log-probs: the blank never extends a prefix
    lpe = lpx if prune_log_prob is None else np.where(lpx >= prune_log_prob, lpx, NEG_INF)
    blank = lp[:, BLANK].tolist()  # (T,)
    best_class = lpe.max(axis=1).tolist()  # (T,) best log-prob of a new prefix's last class
    offsets = np.arange(B) * C  # (B,) flat index of column 0 of each beam row

    # A prefix is named by an integer: the empty prefix is 0, and prefix p extended by class c is
    # p * C + c (its digits in base C are its classes, all nonzero). So equal prefixes get equal
    # names however they were reached, the parent of n is n // C and its last class n % C.
    # The beam: K prefixes, their last class (0 for the empty prefix) and log-probs.
    nodes = [0]
    last_l = [BLANK]
    last = np.zeros(1, dtype=np.intp)  # (K,)
    lastflat = last  # (K,) flat index of each prefix's own last class in the (K, C) matrix
    st = np.array([[0.0], [NEG_INF], [0.0]])  # (3, K): log p ending in blank, in non-blank, total
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

    for t in range(T):
        K = len(nodes)
        pb, pnb, ptot = st
        row = lpx[t]  # (C,)
        rl = row[last]  # (K,) log-prob of each prefix's last class at t

        # The prefixes staying the same: (3, K) ending in blank, in non-blank, total.
        stay = np.empty((3, K))
        np.add(ptot, blank[t], out=stay[0])
        stay_nb = stay[1]
        np.add(pnb, rl, out=stay_nb)
        if mc is not None:
            contrib = st.reshape(-1)[msrc] + row[ml]  # (M,) parents extended by their child's class
            stay_nb[mc] = np.logaddexp(stay_nb[mc], contrib)
        np.logaddexp(stay[0], stay_nb, out=stay[2])
        stot = stay[2]
        full = table is None and K == B
        if full:
            smin = stot[stot.argmin()]  # the last staying prefix: a new one must beat it
            if ptot[ptot.argmax()] + best_class[t] < smin:
                st = stay  # even the best prefix extended by the best class cannot
                continue

        # Every entry: (3, K, C) planes, column 0 the prefixes staying, column c > 0 extended by c.
        X = np.empty((3, K, C))
        Xf = X.reshape(3, K * C)
        ext = Xf[2]  # (K * C,) flat view of the totals
        np.add(ptot[:, None], lpe[t], out=X[2])  # prefix i extended by class c
        # A repeated class extends the prefix only after a blank.
        ext[lastflat] = pb + (rl if prune_log_prob is None else lpe[t][last])
        if mc is not None:
            ext[mflat] = NEG_INF  # already added to the child in the beam
        if full and ext[ext.argmax()] < smin:
            st = stay  # no extension can
            continue
        X[1] = X[2]
        X[0] = NEG_INF
        X[:, :, 0] = stay

        if table is None:
            rank = ext
        else:
            bonus = (nb[:, None] + table.data[vr_l]).reshape(-1)  # (K * C,) bonus of each entry
            rank = ext + bonus
        n = K * C
        if n <= B:
            top = np.arange(n)
        elif K == B:  # only entries ranking at least with the last staying prefix can enter
            if not full:
                srank = stot + nb  # (K,) rank of the staying prefixes
                smin = srank[srank.argmin()]
            top = (rank >= smin).nonzero()[0]  # (>= B,)
            if top.size > B:
                top = top[rank[top].argpartition(top.size - B)[top.size - B :]]  # (B,) new beam
        else:
            top = rank.argpartition(n - B)[n - B :]
        top_l = top.tolist()
        if NEG_INF in rank[top].tolist():  # impossible entries (fewer than B possible) stay out
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
        last = np.array(last_l, dtype=np.intp)
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
                # The parent's mass in st.ravel(): row 0 (blank-ending) for a repeat, else row 2.
                msl.append(q if last_l[q] == c else 2 * K + q)
                mfl.append(q * C + c)
        if mcl:
            mc, ml, msrc, mflat = np.array(mcl + mll + msl + mfl, dtype=np.intp).reshape(4, -1)
        else:
            mc = None

    rank = st[2]
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
    return tuple(reversed(ids)), float(st[2, best])


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




def reference_decode(lp: np.ndarray, alphabet: Alphabet, beam_width: int, scorer: PrefixScorer | None = None,
                     prune_log_prob: float | None = None) -> DecodeResult:
    """What ``CTCDecoder._decode`` returned for checked ``lp`` without a lexicon (or in trie mode
    when the beam ends in a word), computed eagerly by the old code."""
    greedy = _greedy(lp)
    if beam_width == 1 and scorer is None:
        return DecodeResult.make(alphabet.decode(greedy[0]), greedy[0], greedy[2], greedy[1])
    found = _beam(lp, beam_width, prune_log_prob, scorer)
    if found is None:
        return DecodeResult.make("", (), NEG_INF, ())
    return _result(lp, found[0], alphabet, greedy)
