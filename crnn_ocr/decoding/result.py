"""The decoder's output: one frozen ``DecodeResult`` per utterance."""

from __future__ import annotations

import math
from dataclasses import dataclass


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
