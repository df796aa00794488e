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
_UB_MARGIN = 1e-6  # slack on upper bounds for float rounding
_LEVELS = (-0.5, -1.0, -2.0, -4.0, -8.0, -16.0, -32.0, -64.0, -np.inf)  # union-bound levels


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
        buckets: dict[int, list[int]] = {}
        for r, k in enumerate(self._keys):
            buckets.setdefault(len(k), []).append(r)
        self._buckets = {n: ([self._keys[r] for r in rows], np.array(rows, dtype=np.intp)) for n, rows in buckets.items()}
        self._member: np.ndarray | None = None  # (W, C) uint8: word contains class
        self._bits: np.ndarray | None = None  # (W, ceil(C/64)) uint64: the same as bit masks
        self._tries: dict[int | None, tuple[list[dict[int, int]], list[bool]]] = {}

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(cls, source: Sequence[str] | str | os.PathLike, alphabet: Alphabet) -> Lexicon:
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
        """``candidates`` and their edit distances to ``ids``."""
        q = self.key(ids)
        found, dists = [], []
        for n in range(max(1, len(q) - max_distance), len(q) + max_distance + 1):
            bucket = self._buckets.get(n)
            if bucket is None:
                continue
            keys, rows = bucket
            d = process.cdist([q], keys, scorer=Levenshtein.distance, score_cutoff=max_distance, dtype=np.int32)[0]
            hit = np.flatnonzero(d <= max_distance)
            if hit.size:
                found.append(rows[hit])
                dists.append(d[hit])
        if not found:
            return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.int32)
        return np.concatenate(found), np.concatenate(dists)

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
        first = np.argpartition(-key, _EXHAUSTIVE - 1)[:_EXHAUSTIVE]
        score(first)
        ub[first] = -np.inf
        alive = np.flatnonzero(ub > best_rank)
        if alive.size:
            ub_alive = np.minimum(ub[alive], self._mass_bounds(lp, rows[alive]) + b[alive])
            keep = ub_alive > best_rank
            alive, ub_alive = alive[keep], ub_alive[keep]
            order = np.argsort(-ub_alive, kind="stable")
            start, chunk = 0, 2 * _EXHAUSTIVE
            while start < alive.size and ub_alive[order[start]] > best_rank:
                score(alive[order[start : start + chunk]])
                start += chunk
                chunk *= 2
        return best

    def _symbol_bounds(self, lp: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """(len(rows),) union bounds ``min_{c in word} log sum_t p_t(c)``, rounded up to a level."""
        if self._bits is None:
            nb = (self.alphabet.num_classes + 63) // 64
            bits = np.zeros((len(self.words), nb), dtype=np.uint64)
            r = np.repeat(np.arange(len(self.words)), self.lens)
            ids = self.padded[self.padded > 0]
            np.bitwise_or.at(bits, (r, ids // 64), np.left_shift(np.uint64(1), (ids % 64).astype(np.uint64)))
            self._bits = bits
        with np.errstate(divide="ignore", under="ignore"):
            log_mass = np.log(np.exp(lp).sum(axis=0)) * (1 - 1e-9) + 1e-9  # (C,), rounded up
        words = self._bits[rows]  # (n, nb)
        ub = np.zeros(rows.size)
        for level in _LEVELS:  # descending: the last level a word hits is its bound
            low = np.flatnonzero(log_mass[1:] <= level) + 1
            if low.size == 0:
                continue
            mask = np.zeros(words.shape[1], dtype=np.uint64)
            np.bitwise_or.at(mask, low // 64, np.left_shift(np.uint64(1), (low % 64).astype(np.uint64)))
            hit = (words & mask).any(axis=1)
            ub[hit] = level
        return ub + _UB_MARGIN

    def _mass_bounds(self, lp: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """(len(rows),) upper bounds on log p(word|lp) from the word's symbol set.

        With ``a_t`` the mass of the word's symbols and the blank at frame t, every path of the
        word lies inside ``prod_t a_t``, and emits each symbol c of the word at some frame t0,
        so ``p(word) <= min(prod_t a_t, min_c sum_t0 p_t0(c) prod_{t != t0} a_t)``. Frames where
        the blank has probability > 0.999 are left out (``a_t = 1``) and symbols below 1e-3
        everywhere are added to every ``a_t``: both only loosen the bound.
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
            log_total = np.log(mass).sum(axis=1)  # (n,)
            # sum_t0 p_t0(c) / a_t0 for every class c; frames outside count with a_t0 = 1.
            ratio = np.nan_to_num(1.0 / mass, posinf=0.0) @ PF + P[~inside].sum(axis=0)  # (n, C)
            per_symbol = np.where(member[:, 1:] > 0, np.log(ratio[:, 1:]), np.inf).min(axis=1)
            bound = np.minimum(log_total, log_total + per_symbol)
            return bound + _UB_MARGIN * (1 + frames.size)

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
