"""Evaluate a recognizer on labelled images: an LMDB or a ``path<TAB>label`` file."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from crnn_ocr.metrics import RecognitionMetrics, alphabet_metrics
from crnn_ocr.recognizer import Recognizer
from crnn_ocr.views import View, check_frontend, check_views

MAX_NAMED = 5  # skipped samples named in the summary


@dataclass(frozen=True)
class Evaluation:
    """Metrics plus per-sample predictions and timing."""

    metrics: RecognitionMetrics
    ms_per_image: float
    predictions: list[tuple[str, str, str, float]]  # (name, reference, prediction, confidence)
    skipped: int  # samples whose image could not be decoded
    first_skipped: tuple[str, ...] = ()  # the names of the first few of them

    def summary(self) -> str:
        m = self.metrics
        named = f" (first: {', '.join(self.first_skipped)})" if self.first_skipped else ""
        skipped = f", {self.skipped} undecodable images skipped{named}" if self.skipped else ""
        return (
            f"{m.count} samples: word accuracy {m.word_accuracy:.4f} (case-insensitive alphanumeric "
            f"{m.word_accuracy_alnum:.4f}), CER {m.cer:.4f}, 1-NED {m.one_minus_ned:.4f}, "
            f"{self.ms_per_image:.2f} ms/image{skipped}"
        )


def evaluate(recognizer: Recognizer, samples: Iterable[tuple[str, bytes | str | os.PathLike, str]], batch_size: int = 64,
             views: Sequence[View] | None = None) -> Evaluation:
    """Read every (name, image, reference label) sample and compare with its label; ``views``:
    read each under these test-time views (``Recognizer.read_views``, ``crnn_ocr.views``).

    References are compared as the alphabet spells them (case-folded for ``ignore_case``
    alphabets); the alphanumeric-protocol accuracy ignores case and punctuation anyway.
    """
    if views is not None:
        views = check_views(views)
        check_frontend(recognizer.frontend)  # else every sample would be "skipped"
    alphabet = recognizer.alphabet
    names: list[str] = []
    refs: list[str] = []
    preds: list[str] = []
    confs: list[float] = []
    skipped = 0
    first_skipped: list[str] = []
    elapsed = 0.0
    pending: list[tuple[str, object, str]] = []

    def flush() -> None:
        nonlocal elapsed, skipped
        t0 = time.perf_counter()
        prepared, kept = [], []
        for name, image, ref in pending:
            try:
                prepared.append(recognizer.prepare(image) if views is None else recognizer.prepare_views(image, views))
                kept.append((name, ref))
            except ValueError:
                skipped += 1
                if len(first_skipped) < MAX_NAMED:
                    first_skipped.append(name)
        if prepared:
            read = recognizer.read_prepared if views is None else recognizer.read_view_sets
            for (name, ref), res in zip(kept, read(prepared, batch_size=len(prepared))):
                names.append(name)
                refs.append(alphabet.normalize(ref))
                preds.append(res.text)
                confs.append(res.confidence)
        elapsed += time.perf_counter() - t0
        pending.clear()

    for sample in samples:
        pending.append(sample)
        if len(pending) >= batch_size:
            flush()
    flush()
    metrics = alphabet_metrics(preds, refs, alphabet)
    return Evaluation(
        metrics=metrics,
        ms_per_image=1000 * elapsed / max(len(preds) + skipped, 1),
        predictions=list(zip(names, refs, preds, confs)),
        skipped=skipped,
        first_skipped=tuple(first_skipped),
    )
