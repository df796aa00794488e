"""Recognition metrics: word accuracy (exact and the field's case-insensitive alphanumeric
protocol), character/symbol error rate and 1 - normalized edit distance.

Labels are compared as sequences of symbols: characters for text, tokens (pass
``tokenize=str.split``) for music and word-level speech; ``alphabet_metrics`` picks the unit from
the alphabet (the trainer's validation and ``crnn_ocr.evaluation`` both score through it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import editdistance

if TYPE_CHECKING:
    from crnn_ocr.alphabet import Alphabet

_NON_ALNUM = re.compile(r"[^0-9a-z]")


def normalize_alnum(text: str) -> str:
    """The field's evaluation protocol: lower-case, keep only ``0-9a-z``."""
    return _NON_ALNUM.sub("", text.lower())


@dataclass(frozen=True)
class RecognitionMetrics:
    """Aggregate metrics over ``count`` samples (rates in [0, 1], CER may exceed 1)."""

    count: int
    word_accuracy: float
    word_accuracy_alnum: float
    cer: float
    one_minus_ned: float

    def as_dict(self) -> dict[str, float]:
        return {
            "count": self.count,
            "word_accuracy": self.word_accuracy,
            "word_accuracy_alnum": self.word_accuracy_alnum,
            "cer": self.cer,
            "one_minus_ned": self.one_minus_ned,
        }


def compute_metrics(
    predictions: Sequence[str],
    references: Sequence[str],
    tokenize: Callable[[str], Sequence[str]] = list,
) -> RecognitionMetrics:
    """Word accuracy, CER (total edits / total reference symbols) and 1-NED (mean of
    ``1 - d / max(len(pred), len(ref))``) over aligned lists of predictions and references."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    n = len(references)
    if n == 0:
        return RecognitionMetrics(0, 0.0, 0.0, 0.0, 0.0)
    exact = alnum = 0
    edits = ref_len = 0
    ned_sum = 0.0
    for pred, ref in zip(predictions, references):
        exact += pred == ref
        alnum += normalize_alnum(pred) == normalize_alnum(ref)
        p, r = tokenize(pred), tokenize(ref)
        d = editdistance.eval(p, r)
        edits += d
        ref_len += len(r)
        ned_sum += 1.0 - (d / max(len(p), len(r)) if max(len(p), len(r)) else 0.0)
    return RecognitionMetrics(
        count=n,
        word_accuracy=exact / n,
        word_accuracy_alnum=alnum / n,
        cer=edits / max(ref_len, 1),
        one_minus_ned=ned_sum / n,
    )


def alphabet_metrics(predictions: Sequence[str], references: Sequence[str], alphabet: Alphabet) -> RecognitionMetrics:
    """``compute_metrics`` in the alphabet's symbols: whitespace-separated tokens for a tokenized
    alphabet (music, word vocabularies), else characters."""
    return compute_metrics(predictions, references, tokenize=str.split if alphabet.is_tokenized else list)
