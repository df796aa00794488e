"""Language models for CTC beam search: a character (or token) n-gram model trained from plain
text with no external tools, and an adapter for KenLM models (only when ``kenlm`` is installed).

Both score *symbols*: the characters of a character alphabet, the tokens of a token alphabet.
All log-probabilities are natural logs. Contexts are tuples of the previous ``order - 1``
symbols, padded at the start of a sentence with ``BOS``.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import numpy as np

BOS = "<s>"
EOS = "</s>"

__all__ = ["BOS", "EOS", "CharNgramLM", "KenLMAdapter", "LanguageModel"]


class LanguageModel(Protocol):
    """What the beam search needs from a language model."""

    order: int

    def initial_context(self) -> tuple[str, ...]:
        """Context at the start of a sentence."""
        ...

    def next_context(self, context: tuple[str, ...], symbol: str) -> tuple[str, ...]:
        """Context after ``symbol``."""
        ...

    def log_probs(self, context: tuple[str, ...], symbols: Sequence[str]) -> np.ndarray:
        """(len(symbols),) natural-log probabilities of each symbol after ``context``."""
        ...

    def end_log_prob(self, context: tuple[str, ...]) -> float:
        """Natural-log probability of ending the sentence after ``context``."""
        ...


class CharNgramLM:
    """Back-off n-gram model over symbols with interpolated Kneser-Ney or Witten-Bell smoothing.

    Stored ARPA-style: for every seen n-gram its interpolated log-probability, for every seen
    context its back-off weight. The unigrams are interpolated with a uniform distribution over
    the training symbols plus one unknown symbol (``unk_log_prob``), so a symbol never seen in
    training still gets a small probability. Train with ``CharNgramLM.train``; save/load as JSON.
    """

    def __init__(
        self,
        order: int,
        probs: dict[tuple[str, ...], dict[str, float]],
        backoffs: dict[tuple[str, ...], float],
        unk_log_prob: float,
        *,
        smoothing: str = "kneser_ney",
        tokens: bool = False,
    ) -> None:
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        self.order = order
        self.smoothing = smoothing
        self.tokens = tokens
        self._probs = probs
        self._backoffs = backoffs
        self.unk_log_prob = unk_log_prob
        self._index: tuple[tuple[str, ...], dict[str, int]] = ((), {})  # last symbol list seen by log_probs

    # ------------------------------------------------------------------ training
    @classmethod
    def train(
        cls,
        text: str | Iterable[str],
        *,
        order: int = 5,
        smoothing: str = "kneser_ney",
        tokens: bool = False,
    ) -> CharNgramLM:
        """Train on ``text`` (one string, split into lines, or an iterable of lines).

        Each non-empty line is a sentence of symbols: its characters, or with ``tokens=True``
        its whitespace-separated tokens. ``smoothing``: ``"kneser_ney"`` (interpolated, one
        discount per order) or ``"witten_bell"``.
        """
        if smoothing not in ("kneser_ney", "witten_bell"):
            raise ValueError(f"smoothing must be 'kneser_ney' or 'witten_bell', got {smoothing!r}")
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        lines = text.splitlines() if isinstance(text, str) else text
        # counts[k][context][symbol]: raw counts of (k+1)-grams
        counts: list[dict[tuple[str, ...], dict[str, int]]] = [defaultdict(lambda: defaultdict(int)) for _ in range(order)]
        n_sent = 0
        for line in lines:
            line = line.rstrip("\r\n")
            syms = line.split() if tokens else list(line)
            if not syms:
                continue
            n_sent += 1
            seq = [BOS] * (order - 1) + syms + [EOS]
            for i in range(order - 1, len(seq)):
                w = seq[i]
                for k in range(order):
                    counts[k][tuple(seq[i - k : i])][w] += 1
        if n_sent == 0:
            raise ValueError("cannot train a language model on empty text")
        if smoothing == "kneser_ney":
            # Lower orders use continuation counts: how many distinct symbols precede the n-gram.
            levels: list[dict[tuple[str, ...], dict[str, int]]] = [dict() for _ in range(order)]
            levels[order - 1] = counts[order - 1]
            for k in range(order - 1):
                cont: dict[tuple[str, ...], dict[str, int]] = defaultdict(lambda: defaultdict(int))
                for ctx, nxt in counts[k + 1].items():
                    for w in nxt:
                        cont[ctx[1:]][w] += 1
                levels[k] = cont
        else:
            levels = counts
        vocab = {w for d in counts[0].values() for w in d}  # every predicted symbol, EOS included
        uniform = -math.log(len(vocab) + 1)  # +1: the unknown symbol
        probs: dict[tuple[str, ...], dict[str, float]] = {}
        backoffs: dict[tuple[str, ...], float] = {}
        for k in range(order):
            level = levels[k]
            disc = _kn_discount(level) if smoothing == "kneser_ney" else 0.0
            for ctx, nxt in level.items():
                total = sum(nxt.values())
                types = len(nxt)
                if smoothing == "kneser_ney":
                    gamma = disc * types / total
                    own = {w: max(c - disc, 0.0) / total for w, c in nxt.items()}
                else:
                    gamma = types / (total + types)
                    own = {w: c / (total + types) for w, c in nxt.items()}
                lower = ctx[1:]
                table = {}
                for w, a in own.items():
                    low = math.exp(uniform if k == 0 else _lookup(probs, backoffs, lower, w, uniform))
                    table[w] = math.log(a + gamma * low)
                probs[ctx] = table
                backoffs[ctx] = math.log(gamma) if gamma > 0 else -math.inf
        return cls(order, probs, backoffs, uniform, smoothing=smoothing, tokens=tokens)

    @classmethod
    def from_text_file(cls, path: str | os.PathLike[str], **kwargs: Any) -> CharNgramLM:
        """Train on a UTF-8 text file, one sentence per line (keywords as in ``train``)."""
        with open(path, encoding="utf-8") as f:
            return cls.train(f, **kwargs)

    # ------------------------------------------------------------------ queries
    def initial_context(self) -> tuple[str, ...]:
        return (BOS,) * (self.order - 1)

    def next_context(self, context: tuple[str, ...], symbol: str) -> tuple[str, ...]:
        return (context + (symbol,))[1:] if self.order > 1 else ()

    def log_prob(self, symbol: str, context: Sequence[str] = ()) -> float:
        """Natural-log p(symbol | context); the context is cut to the last ``order - 1`` symbols."""
        ctx = tuple(context)[-(self.order - 1) :] if self.order > 1 else ()
        return _lookup(self._probs, self._backoffs, ctx, symbol, self.unk_log_prob)

    def end_log_prob(self, context: Sequence[str]) -> float:
        return self.log_prob(EOS, context)

    def log_probs(self, context: tuple[str, ...], symbols: Sequence[str]) -> np.ndarray:
        """(len(symbols),) log p(symbol | context), built back-off level by level."""
        symbols = tuple(symbols)
        ctx = tuple(context)[-(self.order - 1) :] if self.order > 1 else ()
        if self._index[0] != symbols:
            self._index = (symbols, {s: i for i, s in enumerate(symbols)})
        index = self._index[1]
        vec = np.full(len(symbols), self.unk_log_prob)
        for k in range(len(ctx) + 1):
            h = ctx[len(ctx) - k :]
            table = self._probs.get(h)
            if table is None:
                continue  # unseen context: back-off weight 1
            vec += self._backoffs[h]
            for w, p in table.items():
                i = index.get(w)
                if i is not None:
                    vec[i] = p
        return vec

    def score(self, sentence: str | Sequence[str], *, eos: bool = True) -> float:
        """Natural-log probability of a whole sentence (characters, or tokens if ``tokens``)."""
        syms = (sentence.split() if self.tokens else list(sentence)) if isinstance(sentence, str) else list(sentence)
        ctx = self.initial_context()
        total = 0.0
        for s in syms:
            total += self.log_prob(s, ctx)
            ctx = self.next_context(ctx, s)
        return total + (self.end_log_prob(ctx) if eos else 0.0)

    def perplexity(self, lines: Iterable[str]) -> float:
        """Per-symbol perplexity (EOS counted) over non-empty lines."""
        total, n = 0.0, 0
        for line in lines:
            syms = line.split() if self.tokens else list(line.rstrip("\r\n"))
            if syms:
                total += self.score(syms)
                n += len(syms) + 1
        if n == 0:
            raise ValueError("perplexity needs at least one non-empty line")
        return math.exp(-total / n)

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "crnn_ocr.CharNgramLM",
            "version": 1,
            "order": self.order,
            "smoothing": self.smoothing,
            "tokens": self.tokens,
            "unk_log_prob": self.unk_log_prob,
            "ngrams": [[list(ctx), table, self._backoffs[ctx]] for ctx, table in self._probs.items()],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CharNgramLM:
        if d.get("format") != "crnn_ocr.CharNgramLM":
            raise ValueError("not a crnn_ocr.CharNgramLM model")
        probs = {tuple(ctx): {w: float(p) for w, p in table.items()} for ctx, table, _ in d["ngrams"]}
        backoffs = {tuple(ctx): float(b) for ctx, _, b in d["ngrams"]}
        return cls(
            int(d["order"]), probs, backoffs, float(d["unk_log_prob"]),
            smoothing=d.get("smoothing", "kneser_ney"), tokens=bool(d.get("tokens", False)),
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the model as JSON (``-inf`` stored as ``-Infinity``)."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, ensure_ascii=False)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CharNgramLM:
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: cannot read language model: {e}") from None
        return cls.from_dict(d)

    def __repr__(self) -> str:
        return f"CharNgramLM(order={self.order}, smoothing={self.smoothing!r}, contexts={len(self._probs)})"


def _kn_discount(level: dict[tuple[str, ...], dict[str, int]]) -> float:
    """Kneser-Ney discount D = n1 / (n1 + 2 n2) from the counts of counts, kept in (0, 1)."""
    n1 = n2 = 0
    for nxt in level.values():
        for c in nxt.values():
            n1 += c == 1
            n2 += c == 2
    if n1 == 0:
        return 0.5
    return min(max(n1 / (n1 + 2 * n2), 0.05), 0.95)


def _lookup(
    probs: dict[tuple[str, ...], dict[str, float]],
    backoffs: dict[tuple[str, ...], float],
    ctx: tuple[str, ...],
    w: str,
    unk: float,
) -> float:
    acc = 0.0
    for k in range(len(ctx), -1, -1):
        h = ctx[len(ctx) - k :]
        table = probs.get(h)
        if table is None:
            continue
        p = table.get(w)
        if p is not None:
            return acc + p
        acc += backoffs[h]
    return acc + unk


class KenLMAdapter:
    """A KenLM model over symbols (e.g. a character-level ARPA/binary model built with ``lmplz``
    on space-separated characters). Needs the optional ``kenlm`` module.

    Args:
        path: ARPA or binary model file.
        symbol_map: how symbols are spelled in the model (default: themselves, except the space
            symbol, spelled ``space_token`` since KenLM words cannot contain spaces).
    """

    def __init__(self, path: str | os.PathLike[str], *, space_token: str = "<space>", symbol_map: dict[str, str] | None = None) -> None:
        try:
            import kenlm  # noqa: PLC0415  (optional dependency, imported only when used)
        except ImportError:
            raise ImportError("KenLMAdapter needs the kenlm module: pip install 'crnn_ocr[kenlm]'") from None
        if not os.path.isfile(path):
            raise ValueError(f"{path}: no such KenLM model file")
        self._kenlm = kenlm
        self._model = kenlm.Model(os.fspath(path))
        self.order = int(self._model.order)
        self._map = {" ": space_token, **(symbol_map or {})}
        self._states: dict[tuple[str, ...], Any] = {}
        self._ln10 = math.log(10.0)

    def initial_context(self) -> tuple[str, ...]:
        return (BOS,) * (self.order - 1)

    def next_context(self, context: tuple[str, ...], symbol: str) -> tuple[str, ...]:
        return (context + (symbol,))[1:] if self.order > 1 else ()

    def _state(self, context: tuple[str, ...]) -> Any:
        st = self._states.get(context)
        if st is None:
            st = self._kenlm.State()
            words = [w for w in context if w != BOS]
            if len(words) < len(context):
                self._model.BeginSentenceWrite(st)
            else:
                self._model.NullContextWrite(st)
            for w in words:
                nxt = self._kenlm.State()
                self._model.BaseScore(st, self._map.get(w, w), nxt)
                st = nxt
            self._states[context] = st
        return st

    def log_probs(self, context: tuple[str, ...], symbols: Sequence[str]) -> np.ndarray:
        st = self._state(context)
        out = self._kenlm.State()
        return np.array([self._model.BaseScore(st, self._map.get(s, s), out) * self._ln10 for s in symbols])

    def end_log_prob(self, context: tuple[str, ...]) -> float:
        score: float = self._model.BaseScore(self._state(context), EOS, self._kenlm.State()) * self._ln10
        return score
