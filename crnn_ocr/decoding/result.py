"""The decoder's output: one frozen ``DecodeResult`` per utterance."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

Spans = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class DecodeResult:
    """A decoded labelling.

    Attributes:
        text: the label text (symbols joined with the alphabet's separator).
        token_ids: the labelling as alphabet ids (``1..n``; never the blank).
        score: natural-log probability of the labelling under the CTC model.
            Greedy decoding reports the log-probability of the best path (one alignment, a lower
            bound); beam search and lexicon decoding report ``log p(l|y)``, the sum over all
            alignments, computed exactly with the forward algorithm for the returned labelling
            (the acoustic score only: language-model and hotword bonuses are not included;
            where a scaled forward in probabilities is cheaper it is used, certified against
            underflow, and agrees with the log-domain computation to within 1e-9 in log space).
            ``-inf`` when no alignment of ``text`` fits the input.
        confidence: ``exp(score)`` in ``[0, 1]``: the model's probability that the whole reading
            is exactly right. CTC labelling probabilities sum to one over all labellings, so this
            is the calibrated quantity to threshold (it needs no per-model tuning, and unlike
            means of per-frame maxima it also drops when a symbol may be missing or doubled);
            long readings get lower values because they have more ways to be wrong. For greedy
            results it is the best-path probability, a slight underestimate.
        spans: per token, the frames ``(start, end)`` (end exclusive) that emit it in the best
            (Viterbi) alignment of the labelling; ``len(spans) == len(token_ids)``.

    The decoder may defer ``score`` / ``confidence`` (a forward pass) and ``spans`` (a Viterbi
    pass; most of the time of a long utterance): each is computed on its first access, equal to
    what an eager computation gives, and a result compares, hashes, copies and pickles as one
    built eagerly.
    """

    text: str
    token_ids: tuple[int, ...]
    score: float
    confidence: float
    spans: tuple[tuple[int, int], ...]

    @classmethod
    def make(
        cls, text: str, token_ids: tuple[int, ...], score: float, spans: tuple[tuple[int, int], ...]
    ) -> DecodeResult:
        """Build a result whose confidence is ``exp(score)`` clipped to ``[0, 1]``."""
        score = float(score)
        return cls(text, tuple(int(i) for i in token_ids), score, _confidence(score), spans)

    @classmethod
    def deferred(
        cls, text: str, token_ids: tuple[int, ...], score: float | Callable[[], float], spans: Spans | Callable[[], Spans]
    ) -> DecodeResult:
        """A result whose ``score`` (and confidence) and ``spans``, where given as callables, are
        computed by them on first access (they must not depend on anything that may change
        before then)."""
        self = object.__new__(cls)
        put = object.__setattr__
        put(self, "text", text)
        put(self, "token_ids", tuple(int(i) for i in token_ids))
        if callable(score):
            put(self, "_score", score)
        else:
            put(self, "score", float(score))
            put(self, "confidence", _confidence(self.score))
        put(self, "_spans" if callable(spans) else "spans", spans)
        return self

    if not TYPE_CHECKING:  # hidden from type checkers, which would otherwise accept any attribute

        def __getattr__(self, name: str) -> Any:
            # Reached only for an attribute not set: a deferred score, confidence or spans.
            key = "_spans" if name == "spans" else "_score" if name in ("score", "confidence") else None
            compute = self.__dict__.get(key) if key else None
            if compute is None:
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
            if key == "_spans":
                object.__setattr__(self, "spans", compute())
            else:
                score = float(compute())
                object.__setattr__(self, "score", score)
                object.__setattr__(self, "confidence", _confidence(score))
            self.__dict__.pop(key, None)
            return self.__dict__[name]

    def __getstate__(self) -> dict[str, Any]:
        """Pickle and copy the computed fields, never the deferred computation."""
        return {"text": self.text, "token_ids": self.token_ids, "score": self.score,
                "confidence": self.confidence, "spans": self.spans}


def _confidence(score: float) -> float:
    """``exp(score)`` clipped to ``[0, 1]`` (0 for ``-inf``)."""
    return min(1.0, math.exp(score)) if score > -math.inf else 0.0
