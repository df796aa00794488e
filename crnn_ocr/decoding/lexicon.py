"""Lexicons for CTC decoding (CRNN paper, section 2.3.2): words encoded with an alphabet, the
exact best word by CTC probability, edit-distance candidates and a prefix trie."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from crnn_ocr.alphabet import Alphabet
from crnn_ocr.decoding.ctc import _forward_chunked

__all__ = ["Lexicon"]

_TOKEN_BASE = 0xF0000  # token ids -> private-use characters, for edit distances over tokens
_EXHAUSTIVE = 64  # score this many candidates or fewer without upper bounds
_FIRST = 16  # else score this many first, in order of the union bound (and edit distance)
_UB_MARGIN = 1e-6  # slack on upper bounds for float rounding
_PREFILTER_CLASSES = 512  # larger alphabets (token vocabularies) skip the symbol prefilter
_PREFILTER_CELLS = 1 << 22  # words x classes counted at once while building it
_POPCOUNT16 = np.array([bin(i).count("1") for i in range(1 << 16)], dtype=np.uint8)  # set bits of a uint16


class Lexicon:
    """A de-duplicated list of words, each encoded with ``alphabet`` (after its case folding).

    Build with ``Lexicon.build(words_or_path, alphabet)``. ``words[i]`` is the normalized text
    and ``ids[i]`` its ids.
    """

    def __init__(self, words: list[str], ids: list[tuple[int, ...]], alphabet: Alphabet) -> None:
        if not words:
            raise ValueError("the lexicon is empty")
        self.alphabet = alphabet
        self.words = words
        self.ids = ids
        self.lens = np.fromiter((len(i) for i in ids), dtype=np.intp, count=len(ids))
        self.padded = np.zeros((len(ids), int(self.lens.max())), dtype=np.intp)  # (W, Lmax)
        for r, i in enumerate(ids):
            self.padded[r, : len(i)] = i
        self._index = {w: r for r, w in enumerate(ids)}
        self._keys = words if not alphabet.is_tokenized else [self.key(i) for i in ids]
        # Rows ordered by length (stably), for the length window of the candidate search; each
        # word's key has one character per symbol, so key length == len(ids).
        self._by_len = np.argsort(self.lens, kind="stable")  # (W,)
        self._len_sorted = self.lens[self._by_len]  # (W,)
        self._keys_by_len = np.array(self._keys, dtype=object)[self._by_len]  # (W,) str
        self._member: np.ndarray | None = None  # (W, C) uint8: word contains class
        self._filter: tuple[np.ndarray, np.ndarray] | None = None  # candidate prefilter (by length)
        self._tries: dict[int | None, tuple[list[dict[int, int]], list[bool]]] = {}

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(cls, source: Sequence[str] | str | os.PathLike[str], alphabet: Alphabet) -> Lexicon:
        """From a list of words, or a path to a UTF-8 file with one word per line.

        Empty lines are skipped and duplicates (after case folding) kept once. A word with a
        symbol outside the alphabet raises ``ValueError`` naming the word and its line number
        (or list index).
        """
        if isinstance(source, (str, os.PathLike)):
            path = os.fspath(source)
            try:
                with open(path, encoding="utf-8") as f:
                    lines = f.read().split("\n")
            except (OSError, UnicodeDecodeError) as e:
                raise ValueError(f"{path}: cannot read lexicon: {e}") from None
            entries = [(f"{path}:{n}", ln.strip()) for n, ln in enumerate(lines, 1)]
        else:
            entries = []
            for n, w in enumerate(source):
                if not isinstance(w, str):
                    raise ValueError(f"lexicon entry {n} is not a string: {w!r}")
                entries.append((f"lexicon entry {n}", w.strip()))
        words: list[str] = []
        ids: list[tuple[int, ...]] = []
        seen: set[tuple[int, ...]] = set()
        for where, w in entries:
            if not w:
                continue
            enc = alphabet.try_encode(w)
            if enc is None:
                try:
                    alphabet.encode(w)
                except ValueError as e:
                    raise ValueError(f"{where}: lexicon word {w!r}: {e}") from None
            t = tuple(enc)  # type: ignore[arg-type]
            if not t:
                continue
            if t not in seen:
                seen.add(t)
                ids.append(t)
                words.append(alphabet.decode(t))
        if not words:
            raise ValueError(f"the lexicon is empty ({'no words in ' + os.fspath(source) if isinstance(source, (str, os.PathLike)) else 'no words given'})")
        return cls(words, ids, alphabet)

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        if isinstance(word, str):
            enc = self.alphabet.try_encode(word)
            return enc is not None and tuple(enc) in self._index
        return tuple(word) in self._index  # type: ignore[arg-type]

    def index(self, ids: Sequence[int]) -> int | None:
        """Row of the word with these ids, or None."""
        return self._index.get(tuple(ids))

    def key(self, ids: Sequence[int]) -> str:
        """The string edit distances are computed on (the text itself for character alphabets)."""
        if not self.alphabet.is_tokenized:
            return self.alphabet.decode(ids)
        return "".join(chr(_TOKEN_BASE + i) for i in ids)

    # ------------------------------------------------------------------ candidates
    def candidates(self, ids: Sequence[int], max_distance: int) -> np.ndarray:
        """Rows of all words within Levenshtein distance ``max_distance`` (symbol edits) of ``ids``."""
        return self.candidates_with_distances(ids, max_distance)[0]

    def candidates_with_distances(self, ids: Sequence[int], max_distance: int) -> tuple[np.ndarray, np.ndarray]:
        """``candidates`` and their edit distances to ``ids`` (rows by length, then row order).

        Only words passing two necessary conditions get an edit distance (rapidfuzz): the length
        differs by at most ``max_distance``, and so does the multiset of symbols, both ways
        (an edit adds at most one symbol and removes at most one; counted here up to two
        occurrences of each symbol, which keeps the test necessary).
        """
        q = self.key(ids)
        n = len(q)
        lo = int(np.searchsorted(self._len_sorted, max(1, n - max_distance), side="left"))
        hi = int(np.searchsorted(self._len_sorted, n + max_distance, side="right"))
        if lo >= hi:
            return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.int32)
        prefilter = self._prefilter()
        if prefilter is None:
            sel = np.arange(lo, hi)
        else:
            bits16, size = prefilter
            C = self.alphabet.num_classes
            counts: dict[int, int] = {}
            for c in ids:
                counts[c] = counts.get(c, 0) + 1
            query = [c for c in counts] + [C + c for c, k in counts.items() if k > 1]  # bits set
            qbits = np.zeros(bits16.shape[1], dtype=np.uint16)
            for bit in query:
                qbits[bit // 16] |= np.uint16(1 << (bit % 16))
            shared = np.zeros(hi - lo, dtype=np.intp)  # (n,) symbol occurrences (up to 2) in common
            for lane in sorted({bit // 16 for bit in query}):
                shared += _POPCOUNT16[bits16[lo:hi, lane] & qbits[lane]]
            # Occurrences in the word missing from the query, and in the query missing from the word.
            ok = (size[lo:hi] - shared <= max_distance) & (len(query) - shared <= max_distance)
            sel = lo + np.flatnonzero(ok)  # positions in length order
        if sel.size == 0:
            return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.int32)
        keys = self._keys_by_len[sel].tolist()
        d = process.cdist([q], keys, scorer=Levenshtein.distance, score_cutoff=max_distance, dtype=np.int32, workers=1)[0]
        hit = np.flatnonzero(d <= max_distance)
        return self._by_len[sel[hit]], d[hit]

    def _prefilter(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Rows in length order: (W, lanes) uint16 bit masks with bit c set if the word contains
        class c and bit C + c if it contains it twice or more, and (W,) the number of set bits
        (built on first use). None for alphabets of more than ``_PREFILTER_CLASSES`` classes."""
        if self._filter is None:
            W, C = len(self.words), self.alphabet.num_classes
            if C > _PREFILTER_CLASSES:
                return None
            nbytes = (2 * C + 15) // 16 * 2  # whole uint16 lanes
            packed = np.zeros((W, nbytes), dtype=np.uint8)
            size = np.empty(W, dtype=np.intp)
            step = max(1, _PREFILTER_CELLS // C)  # rows per chunk of dense counts
            for a in range(0, W, step):
                rows = self._by_len[a : a + step]
                pad = self.padded[rows]
                r = np.repeat(np.arange(rows.size), self.lens[rows])
                counts = np.bincount(r * C + pad[pad > 0], minlength=rows.size * C).reshape(rows.size, C)
                occ = np.concatenate((counts >= 1, counts >= 2), axis=1)  # (rows, 2C)
                bits = np.packbits(occ, axis=1, bitorder="little")  # (rows, ceil(2C/8))
                packed[a : a + step, : bits.shape[1]] = bits
                size[a : a + step] = occ.sum(axis=1)
            self._filter = (packed.view("<u2"), size)  # lane k holds bits 16k..16k+15
        return self._filter

    def nearest(self, ids: Sequence[int], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the ``k`` words closest to ``ids`` in edit distance, and their distances."""
        hits = process.extract(self.key(ids), self._keys, scorer=Levenshtein.distance, limit=k)
        return np.array([r for _, _, r in hits], dtype=np.intp), np.array([d for _, d, _ in hits], dtype=np.int32)

    # ------------------------------------------------------------------ scoring
    def log_likelihoods(self, lp: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """log p(word | lp) for the given rows, (len(rows),); lp checked (T, C) log-probs."""
        lens = self.lens[rows]
        return _forward_chunked(lp, self.padded[rows, : int(lens.max())], lens)

    def best(
        self,
        lp: np.ndarray,
        rows: np.ndarray | None = None,
        bonus: np.ndarray | None = None,
        distances: np.ndarray | None = None,
    ) -> tuple[int, float] | None:
        """The row maximizing ``log p(word|lp) + bonus[row]`` among ``rows`` (all words if None),
        and its log p(word|lp); None if every word has probability 0. ``distances`` (one per
        entry of ``rows``, e.g. edit distances to a first reading) only set the order in which
        words are tried.

        Exact. Words are scored with the forward algorithm in order of two cheap upper bounds,
        stopping once no remaining bound can beat the best score found:

        * a path of a word emits each of its symbols at least once, so
          ``p(word|lp) <= min_{c in word} sum_t p_t(c)`` (union bound);
        * a path of a word only uses its own symbols and the blank, so
          ``p(word|lp) <= prod_t (p_t(blank) + sum_{c in word} p_t(c))``.
        """
        if rows is None:
            rows = np.arange(len(self.words))
        n = rows.size
        if n == 0:
            return None
        b = bonus[rows] if bonus is not None else np.zeros(n)
        if n <= _EXHAUSTIVE or lp.shape[0] == 0:
            ll = self.log_likelihoods(lp, rows)
            rank = ll + b
            j = int(np.argmax(rank))
            return None if rank[j] == -np.inf else (int(rows[j]), float(ll[j]))
        ub = self._symbol_bounds(lp, rows) + b
        best_rank, best = -np.inf, None

        def score(sel: np.ndarray) -> None:
            nonlocal best_rank, best
            ll = self.log_likelihoods(lp, rows[sel])
            rank = ll + b[sel]
            j = int(np.argmax(rank))
            if rank[j] > best_rank:
                best_rank, best = float(rank[j]), (int(rows[sel[j]]), float(ll[j]))

        # The most promising words first; usually nothing else can beat the best of them.
        key = ub if distances is None else ub - 1e-3 * distances
        first = np.argpartition(-key, _FIRST - 1)[:_FIRST]
        score(first)
        ub[first] = -np.inf
        alive = np.flatnonzero(ub > best_rank)
        if alive.size:
            mass = self._mass_bounds(lp, rows[alive], best_rank - b[alive])
            ub_alive = np.minimum(ub[alive], mass + b[alive])
            keep = ub_alive > best_rank
            alive, ub_alive = alive[keep], ub_alive[keep]
            order = np.argsort(-ub_alive, kind="stable")
            start, chunk = 0, 2 * _FIRST
            while start < alive.size and ub_alive[order[start]] > best_rank:
                score(alive[order[start : start + chunk]])
                start += chunk
                chunk *= 2
        return best

    def _symbol_bounds(self, lp: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """(len(rows),) union bounds ``min(0, min_{c in word} log sum_t p_t(c))``."""
        with np.errstate(divide="ignore", under="ignore"):
            log_mass = np.log(np.exp(lp).sum(axis=0)) * (1 - 1e-9) + 1e-9  # (C,), rounded up
        log_mass = np.minimum(log_mass, 0.0)
        log_mass[0] = 0.0  # padding (the blank is in no word)
        bounds: np.ndarray = log_mass[self.padded[rows]].min(axis=1) + _UB_MARGIN
        return bounds

    def _mass_bounds(self, lp: np.ndarray, rows: np.ndarray, floor: float | np.ndarray = -np.inf) -> np.ndarray:
        """(len(rows),) upper bounds on log p(word|lp) from the word's symbol set.

        With ``a_t`` the mass of the word's symbols and the blank at frame t, every path of the
        word lies inside ``prod_t a_t``, and emits each symbol c of the word at some frame t0,
        so ``p(word) <= min(prod_t a_t, min_c sum_t0 p_t0(c) prod_{t != t0} a_t)``. Frames where
        the blank has probability > 0.999 are left out (``a_t = 1``) and symbols below 1e-3
        everywhere are added to every ``a_t``: both only loosen the bound. Words whose first
        bound is already ``<= floor`` (scalar or per row) do not get the second.
        """
        if self._member is None:
            if len(self.words) * self.alphabet.num_classes > 200_000_000:  # too big to hold: no bound
                return np.zeros(rows.size)
            member = np.zeros((len(self.words), self.alphabet.num_classes), dtype=np.uint8)
            r = np.repeat(np.arange(len(self.words)), self.lens)
            member[r, self.padded[self.padded > 0]] = 1  # padded rows hold ids then zeros
            self._member = member
        with np.errstate(divide="ignore", under="ignore", invalid="ignore"):
            P = np.exp(lp)  # (T, C)
            inside = P[:, 0] < 0.999
            frames = np.flatnonzero(inside)
            if frames.size == 0:
                return np.full(rows.size, _UB_MARGIN)
            PF = P[frames]  # (F, C)
            syms = np.flatnonzero(PF[:, 1:].max(axis=0) >= 1e-3) + 1  # (U,)
            slack = np.clip(PF.sum(axis=1) - PF[:, syms].sum(axis=1), 0.0, None)  # blank + small symbols
            member = self._member[rows]  # (n, C)
            mass = member[:, syms].astype(np.float64) @ PF[:, syms].T + slack  # (n, F): a_t >= true mass
            bound = np.log(mass).sum(axis=1)  # (n,) log prod_t a_t
            open_ = np.flatnonzero(bound > floor)  # rows the second bound may still matter for
            if open_.size:
                # sum_t0 p_t0(c) / a_t0 for every class c; frames outside count with a_t0 = 1.
                ratio = np.nan_to_num(1.0 / mass[open_], posinf=0.0) @ PF[:, 1:] + P[~inside, 1:].sum(axis=0)  # (m, C-1)
                least = np.where(member[open_, 1:] > 0, ratio, np.inf).min(axis=1)  # (m,) over the word's symbols
                bound[open_] += np.minimum(np.log(least), 0.0)
            bounds: np.ndarray = bound + _UB_MARGIN * (1 + frames.size)
            return bounds

    # ------------------------------------------------------------------ trie
    def trie(self, split_id: int | None = None) -> tuple[list[dict[int, int]], list[bool]]:
        """Prefix trie of the words: (children per node, terminal per node); node 0 is the root.

        With ``split_id`` (the space symbol) words are split there, so the trie holds single
        words and sequences of them are formed by the decoder.
        """
        cached = self._tries.get(split_id)
        if cached is not None:
            return cached
        children: list[dict[int, int]] = [{}]
        terminal = [False]
        for ids in self.ids:
            parts = [ids]
            if split_id is not None and split_id in ids:
                cur: list[int]
                parts, cur = [], []
                for i in ids:
                    if i == split_id:
                        parts.append(tuple(cur))
                        cur = []
                    else:
                        cur.append(i)
                parts.append(tuple(cur))
            for part in parts:
                if not part:
                    continue
                node = 0
                for i in part:
                    nxt = children[node].get(i)
                    if nxt is None:
                        nxt = len(children)
                        children[node][i] = nxt
                        children.append({})
                        terminal.append(False)
                    node = nxt
                terminal[node] = True
        self._tries[split_id] = (children, terminal)
        return children, terminal

    def __repr__(self) -> str:
        shown = ", ".join(self.words[:5])
        return f"Lexicon({len(self.words)} words: {shown}{', ...' if len(self.words) > 5 else ''})"
