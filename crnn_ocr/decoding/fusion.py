"""Prefix scorers for beam search (``ctc.PrefixScorer``): language-model fusion with insertion
bonus, hotword boosting and lexicon-trie constraints, and their combination. A scorer maps a
prefix state to a ``(C,)`` vector of log bonuses for appending each class; the beam search adds
them to the acoustic log-probabilities when ranking prefixes (never to the reported score)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from crnn_ocr.alphabet import BLANK, Alphabet
from crnn_ocr.decoding.lexicon import Lexicon
from crnn_ocr.decoding.lm import LanguageModel

if TYPE_CHECKING:
    from crnn_ocr.decoding.ctc import PrefixScorer

__all__ = ["CombinedScorer", "HotwordScorer", "LMScorer", "LexiconTrieScorer"]


class LMScorer:
    """``alpha * log p_LM(symbol | context) + beta`` per appended symbol, ``alpha * log p_LM(end)``
    at the end. The LM sees the alphabet's symbols (characters, or tokens). ``lm=None`` gives the
    insertion bonus ``beta`` alone."""

    def __init__(self, lm: LanguageModel | None, alphabet: Alphabet, alpha: float, beta: float) -> None:
        self.lm, self.alphabet, self.alpha, self.beta = lm, alphabet, alpha, beta
        self._symbols = alphabet.symbols

    def initial(self) -> Hashable:
        return self.lm.initial_context() if self.lm is not None else ()

    def bonus(self, state: Hashable) -> np.ndarray:
        vec = np.full(self.alphabet.num_classes, self.beta)
        if self.lm is not None:
            vec[1:] += self.alpha * np.asarray(self.lm.log_probs(state, self._symbols), dtype=np.float64)  # type: ignore[arg-type]
        vec[BLANK] = 0.0
        return vec

    def advance(self, state: Hashable, cls: int) -> Hashable:
        return self.lm.next_context(state, self._symbols[cls - 1]) if self.lm is not None else ()  # type: ignore[arg-type]

    def final(self, state: Hashable) -> float:
        return self.alpha * float(self.lm.end_log_prob(state)) if self.lm is not None else 0.0  # type: ignore[arg-type]

    def word_bonus(self, ids: Sequence[int]) -> float:
        """Total bonus of a whole labelling."""
        total = self.beta * len(ids)
        if self.lm is not None:
            ctx = self.lm.initial_context()
            for i in ids:
                sym = self._symbols[i - 1]
                total += self.alpha * float(self.lm.log_probs(ctx, (sym,))[0])
                ctx = self.lm.next_context(ctx, sym)
            total += self.alpha * float(self.lm.end_log_prob(ctx))
        return total


class HotwordScorer:
    """Boosts hotwords: a prefix that matches ``m`` of a hotword's ``n`` symbols so far gets
    ``weight * m / n``; a completed hotword keeps ``weight``; a broken partial match loses its
    credit again. Partial credit keeps hotwords alive in the beam until they are complete.

    With a character alphabet a hotword must start at a word start (start of the text or after
    the space symbol) and end at a word end (space or end of text); a hotword may contain
    spaces. With a token alphabet hotwords are token sequences that may start at any token.
    """

    def __init__(self, hotwords: Sequence[str | Sequence[str]], alphabet: Alphabet, weight: float) -> None:
        self.alphabet, self.weight = alphabet, float(weight)
        self.hotwords: list[tuple[int, ...]] = []
        for n, hw in enumerate(hotwords):
            if isinstance(hw, str) and not hw.strip():
                raise ValueError(f"hotword {n} is empty")
            try:
                ids = tuple(alphabet.encode(hw.strip() if isinstance(hw, str) else hw))
            except ValueError as e:
                raise ValueError(f"hotword {n} ({hw!r}): {e}") from None
            if ids and ids not in self.hotwords:
                self.hotwords.append(ids)
        if not self.hotwords:
            raise ValueError("hotwords is empty")
        self.tokens = alphabet.is_tokenized
        self.space = alphabet.id_of(" ") if not self.tokens and " " in alphabet else None
        self._starts: dict[int, list[int]] = {}
        for h, ids in enumerate(self.hotwords):
            self._starts.setdefault(ids[0], []).append(h)

    def _credit(self, active: tuple[tuple[int, int], ...]) -> float:
        return max((m / len(self.hotwords[h]) for h, m in active), default=0.0)

    def initial(self) -> Hashable:
        return ((), True)  # (active partial matches (hotword, matched), at a word start)

    def _step(self, state: Hashable, cls: int) -> tuple[Hashable, float]:
        """Next state and credit banked for good by this step."""
        active: tuple[tuple[int, int], ...]
        at_start: bool
        active, at_start = state  # type: ignore[misc]
        nxt: list[tuple[int, int]] = []
        banked = 0.0
        for h, m in active:
            hw = self.hotwords[h]
            if m < len(hw) and hw[m] == cls:
                if self.tokens and m + 1 == len(hw):
                    banked = 1.0
                else:
                    nxt.append((h, m + 1))
            elif m == len(hw) and cls == self.space:
                banked = 1.0  # a completed hotword followed by a word end
        if at_start or self.tokens:
            for h in self._starts.get(cls, ()):
                if self.tokens and len(self.hotwords[h]) == 1:
                    banked = 1.0
                else:
                    nxt.append((h, 1))
        return (tuple(sorted(set(nxt))), self.space is not None and cls == self.space), banked

    def advance(self, state: Hashable, cls: int) -> Hashable:
        return self._step(state, cls)[0]

    def bonus(self, state: Hashable) -> np.ndarray:
        active: tuple[tuple[int, int], ...]
        at_start: bool
        active, at_start = state  # type: ignore[misc]
        old = self._credit(active)
        vec = np.full(self.alphabet.num_classes, -self.weight * old)  # most symbols break every match
        special = {hw[m] for h, m in active for hw in (self.hotwords[h],) if m < len(hw)}
        if at_start or self.tokens:
            special.update(self._starts)
        if self.space is not None:
            special.add(self.space)
        for c in special:
            act: tuple[tuple[int, int], ...]
            (act, _), banked = self._step(state, c)  # type: ignore[misc]
            vec[c] = self.weight * (banked + self._credit(act) - old)
        vec[BLANK] = 0.0
        return vec

    def final(self, state: Hashable) -> float:
        active: tuple[tuple[int, int], ...]
        active, _ = state  # type: ignore[misc]
        done = 1.0 if any(m == len(self.hotwords[h]) for h, m in active) else 0.0
        return self.weight * (done - self._credit(active))

    def word_bonus(self, ids: Sequence[int]) -> float:
        """Total bonus of a whole labelling."""
        state, total = self.initial(), 0.0
        for c in ids:
            state, banked = self._step(state, c)
            total += banked
        active: tuple[tuple[int, int], ...]
        active, _ = state  # type: ignore[misc]
        return self.weight * (total + (1.0 if any(m == len(self.hotwords[h]) for h, m in active) else 0.0))


class LexiconTrieScorer:
    """Constrains beam search to lexicon words: every prefix follows the lexicon trie, and with
    a space symbol in a character alphabet, a complete word may be followed by a space and
    another word. A labelling may only end on a complete word.

    ``chain=True`` (``lexicon_mode="words"``) also lets a complete word be followed directly by
    another where the alphabet has no space symbol (a token alphabet of words). Where a symbol
    could both continue the word and start a new one, continuing wins.
    """

    def __init__(self, lexicon: Lexicon, alphabet: Alphabet, chain: bool = False) -> None:
        self.alphabet = alphabet
        self.space = alphabet.id_of(" ") if not alphabet.is_tokenized and " " in alphabet else None
        self.children, self.terminal = lexicon.trie(self.space)
        self.chain = chain and self.space is None

    def initial(self) -> Hashable:
        return 0

    def bonus(self, state: Hashable) -> np.ndarray:
        vec = np.full(self.alphabet.num_classes, -np.inf)
        if state == -1:
            return vec
        kids = self.children[state]  # type: ignore[call-overload]
        vec[list(kids)] = 0.0
        if self.space is not None and self.terminal[state]:  # type: ignore[call-overload]
            vec[self.space] = 0.0
        if self.chain and self.terminal[state]:  # type: ignore[call-overload]
            vec[list(self.children[0])] = 0.0
        vec[BLANK] = 0.0
        return vec

    def advance(self, state: Hashable, cls: int) -> Hashable:
        if state == -1:
            return -1
        nxt: int | None = self.children[state].get(cls)  # type: ignore[call-overload]
        if nxt is not None:
            return nxt
        if cls == self.space and self.terminal[state]:  # type: ignore[call-overload]
            return 0
        if self.chain and self.terminal[state]:  # type: ignore[call-overload]
            return self.children[0].get(cls, -1)
        return -1  # outside the lexicon (never chosen: its bonus is -inf)

    def final(self, state: Hashable) -> float:
        return 0.0 if state != -1 and self.terminal[state] else -np.inf  # type: ignore[call-overload]


class CombinedScorer:
    """The sum of several scorers (state: the tuple of their states)."""

    def __init__(self, scorers: Sequence[PrefixScorer]) -> None:
        self.scorers = list(scorers)

    def initial(self) -> Hashable:
        return tuple(s.initial() for s in self.scorers)

    def bonus(self, state: Hashable) -> np.ndarray:
        vecs: list[np.ndarray] = [s.bonus(x) for s, x in zip(self.scorers, state)]  # type: ignore[call-overload]
        out: np.ndarray = vecs[0].copy()
        for v in vecs[1:]:
            out += v
        return out

    def advance(self, state: Hashable, cls: int) -> Hashable:
        return tuple(s.advance(x, cls) for s, x in zip(self.scorers, state))  # type: ignore[call-overload]

    def final(self, state: Hashable) -> float:
        return float(sum(s.final(x) for s, x in zip(self.scorers, state)))  # type: ignore[call-overload]
