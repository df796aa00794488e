"""The decoder's output: one frozen ``DecodeResult`` per utterance."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

Spans = tuple[tuple[int, int], ...]
_DEFERRED = ("score", "confidence", "spans")


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
            (the acoustic score only: language-model and hotword bonuses are not included).
            ``-inf`` when no alignment of ``text`` fits the input.
        confidence: ``exp(score)`` in ``[0, 1]``: the model's probability that the whole reading
            is exactly right. CTC labelling probabilities sum to one over all labellings, so this
            is the calibrated quantity to threshold (it needs no per-model tuning, and unlike
            means of per-frame maxima it also drops when a symbol may be missing or doubled);
            long readings get lower values because they have more ways to be wrong. For greedy
            results it is the best-path probability, a slight underestimate.
        spans: per token, the frames ``(start, end)`` (end exclusive) that emit it in the best
            (Viterbi) alignment of the labelling; ``len(spans) == len(token_ids)``.

    The decoder may defer ``score``, ``confidence`` and ``spans`` (a forward and a Viterbi pass,
    most of the time of a long utterance): they are computed on first access, equal to what an
    eager computation gives, and a result compares, hashes, copies and pickles as one built
    eagerly.
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
        confidence = min(1.0, math.exp(score)) if score > -math.inf else 0.0
        return cls(text, tuple(int(i) for i in token_ids), score, confidence, spans)

    @classmethod
    def deferred(cls, text: str, token_ids: tuple[int, ...], compute: Callable[[], tuple[float, Spans]]) -> DecodeResult:
        """A result whose ``(score, spans)`` come from ``compute()`` on first access (``compute``
        must not depend on anything that may change before then)."""
        self = object.__new__(cls)
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "token_ids", tuple(int(i) for i in token_ids))
        object.__setattr__(self, "_compute", compute)
        return self

    if not TYPE_CHECKING:  # hidden from type checkers, which would otherwise accept any attribute

        def __getattr__(self, name: str) -> Any:
            # Reached only for an attribute not set: a deferred score, confidence or spans.
            compute = self.__dict__.get("_compute") if name in _DEFERRED else None
            if compute is None:
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
            done = DecodeResult.make(self.text, self.token_ids, *compute())
            for field in _DEFERRED:
                object.__setattr__(self, field, getattr(done, field))
            self.__dict__.pop("_compute", None)
            return self.__dict__[name]

    def __getstate__(self) -> dict[str, Any]:
        """Pickle and copy the computed fields, never the deferred computation."""
        return {"text": self.text, "token_ids": self.token_ids, "score": self.score,
                "confidence": self.confidence, "spans": self.spans}
