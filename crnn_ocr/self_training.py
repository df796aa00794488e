"""Self-training: a model adapted to a new domain (a speaker, a microphone) by training on its own
readings of unlabelled inputs from it. CTC recognizers read with their lexicon; classifiers
label each input with their top class, taggers with their tags over threshold.

    trained, report = self_train("spoken_digits", [open(p, "rb").read() for p in clips], "runs/me",
                                 lexicon=digit_words, lexicon_mode="score", keep_data=["tts_strings/"])
    trained.read("clips/another.wav")

The model first adapts its BatchNorm statistics to the inputs (``crnn_ocr.adapt``, AdaBN) and
reads them; its readings become labels; the trainer (``crnn_ocr.engine``) continues the checkpoint
on them for a few steps, with data of the model's own kind in every batch so that it keeps what it
knew; the trained model's statistics are re-estimated on the inputs. A second call on the result
is a second round. Measured in ``bench/bench_selftrain.py`` (BENCHMARKS.md: speakers never heard).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SelfTraining:
    """What ``self_train`` did: inputs given, those that could not be read (skipped), pseudo-labelled
    inputs trained on (``kept``), those read but left out (below ``min_confidence`` or read as
    nothing), training steps, the trained (not yet re-adapted) checkpoint, each input's
    pseudo-label (None: left out or unreadable), and the BatchNorm layers adapted (0: the model has none)."""

    inputs: int
    unreadable: int
    kept: int
    left_out: int
    steps: int
    checkpoint: Path
    labels: tuple[str | None, ...]
    layers: int


def self_train(
    checkpoint: str | os.PathLike,  # a .pt file or a shipped model's name
    sources: Sequence[bytes],
    work_dir: str | os.PathLike,
    *,
    lexicon: Sequence[str] | str | os.PathLike | None = None,
    lexicon_mode: str = "auto",
    steps: int = 150,
    lr: float = 5e-4,
    batch_size: int = 32,
    keep_data: Sequence[str] = (),
    keep_shares: Sequence[float] | None = None,
    min_confidence: float = 0.0,
    seed: int = 0,
    device: str | None = None,
    progress: bool = False,
    on_skip: Callable[[int, ValueError], None] | None = None,
) -> tuple[Any, SelfTraining]:
    """Unsupervised adaptation of a model to a new domain (a speaker, a microphone) by
    self-training on its own readings of unlabelled inputs of that domain.

    ``sources``: the inputs' encoded bytes (audio files or images, as an LMDB holds them). The
    model adapts its BatchNorm statistics to them (``adapt_batchnorm``) and reads each one. A CTC
    recognizer reads with ``lexicon`` (a word list or its file) through the lexicon decoder, where
    a speech model reads a sequence of its words unless ``lexicon_mode="score"`` (one word per
    input); its confidence is the model's probability of the whole reading. A classifier's reading
    is its top class with that class's probability; a tagger's, its tags over their thresholds
    with the lowest of their probabilities (no tag: nothing to train on). Readings whose confidence
    is at least ``min_confidence`` become labels. Training (``crnn_ocr.engine.train``: the
    checkpoint's own augmentation and mixup, AdamW at ``lr``, cosine schedule, on ``device``,
    default the trainer's choice) continues the checkpoint for ``steps`` steps on them, with
    ``keep_data`` LMDBs of the model's own kind of training data in every batch (``keep_shares``:
    each one's share of a batch, default 0.8 split equally; the pseudo-labelled inputs get the
    rest) so that it keeps what it knew. Finally the trained model's statistics are re-estimated
    on the inputs.

    Returns (the adapted ``Recognizer`` or ``Classifier``, a ``SelfTraining`` report); the run and the
    pseudo-labelled LMDB stay in ``work_dir``. Inputs that cannot be read are skipped and counted
    (``on_skip(index, error)`` for each); ``ValueError`` when none reads as anything to train on, the
    shares do not fit, or a lexicon is given for a classifier.
    """
    from crnn_ocr.checkpoint import load_checkpoint
    from crnn_ocr.data import write_lmdb
    from crnn_ocr.engine import TrainConfig, train
    from crnn_ocr.recognizer import resolve_model
    from crnn_ocr.tasks import task_of_kind

    checkpoint = resolve_model(checkpoint, "torch")[0]  # a shipped model's name -> its .pt file
    if steps < 1:
        raise ValueError(f"self-training needs at least one step, got {steps}")
    shares = list(keep_shares) if keep_shares is not None else [0.8 / max(len(keep_data), 1)] * len(keep_data)
    if len(shares) != len(keep_data):
        raise ValueError(f"{len(shares)} shares for {len(keep_data)} kept LMDBs")
    if keep_data and not (all(s > 0 for s in shares) and sum(shares) < 1):
        raise ValueError(f"the kept data's shares must be positive and leave room for the pseudo-labels, got {shares}")
    state = load_checkpoint(checkpoint)
    classifier = task_of_kind(state.get("kind")) != "ctc"
    if classifier and lexicon is not None:
        raise ValueError(f"{os.fspath(checkpoint)}: a lexicon constrains a CTC recognizer's readings; a {state['kind']} model reads its classes")
    words = lexicon if lexicon is None or isinstance(lexicon, (str, os.PathLike)) else list(lexicon)  # a word list or its file
    options: dict[str, Any] = {"lexicon": words, "lexicon_mode": lexicon_mode, "beam_width": 8} if words else {}
    rec = load_reader(checkpoint, classifier, options)
    readable, prepared = [], []
    for i, source in enumerate(sources):
        try:
            prepared.append(rec.prepare(source))
            readable.append(i)
        except ValueError as e:  # an undecodable input is counted, not fatal
            if on_skip is not None:
                on_skip(i, e)
    if not prepared:
        raise ValueError(f"self-training: none of the {len(sources)} inputs could be read")
    adapt_statistics(rec, prepared)
    labels: list[str | None] = [None] * len(sources)
    for i, (label, confidence) in zip(readable, readings(rec, prepared)):
        labels[i] = label if label.strip() and confidence >= min_confidence else None
    kept = [(bytes(sources[i]), label) for i, label in enumerate(labels) if label is not None]
    if not kept:
        raise ValueError(f"self-training: none of the {len(prepared)} inputs read as anything with confidence >= {min_confidence}")
    work = Path(work_dir)
    pseudo = work / "pseudo_labels"
    write_lmdb(pseudo, kept, overwrite=True)
    stored = state.get("train_config") or {}
    max_width = max(int(stored.get("max_width") or 400), *(int(p.shape[1]) for p in prepared))  # no input left out as too wide
    config = TrainConfig(
        data=[os.fspath(pseudo), *keep_data], data_ratios=[1 - sum(shares), *shares] if keep_data else None,
        kind=rec.kind, init_from=os.fspath(checkpoint), max_steps=steps, lr=lr, schedule="cosine",
        warmup_steps=min(20, steps // 5), batch_size=batch_size, max_width=max_width, out_dir=os.fspath(work / "run"),
        save_every=steps, val_every=steps + 1, num_workers=0, seed=seed, progress=progress, device=device,
        augment=stored.get("augment", True), mixup=float(stored.get("mixup") or 0.0),
    )
    result = train(config)
    trained = load_reader(result.last_checkpoint, classifier, options)
    layers = adapt_statistics(trained, prepared)
    report = SelfTraining(len(sources), len(sources) - len(prepared), len(kept), len(prepared) - len(kept), steps,
                          Path(result.last_checkpoint), tuple(labels), layers)
    return trained, report


def load_reader(checkpoint: str | os.PathLike, classifier: bool, options: dict[str, Any]) -> Any:
    """The checkpoint's torch reader on the CPU: a ``Classifier``, or a ``Recognizer`` decoding with ``options``."""
    if classifier:
        from crnn_ocr.classify.reading import load_classifier

        return load_classifier(checkpoint, backend="torch", device="cpu")
    from crnn_ocr.recognizer import load_recognizer

    return load_recognizer(checkpoint, backend="torch", device="cpu", **options)


def adapt_statistics(reader: Any, prepared: Sequence[Any]) -> int:
    """AdaBN on the prepared inputs; the layers adapted (0: a model without BatchNorm self-trains all the same)."""
    from crnn_ocr.adapt import batchnorm_layers

    return reader.adapt_prepared(prepared) if batchnorm_layers(reader.backend.model) else 0


def readings(reader: Any, prepared: Sequence[Any]) -> list[tuple[str, float]]:
    """(label, confidence) for each prepared input: a recognizer's text and its probability; a
    classifier's top class and its probability; a tagger's comma-joined tags over threshold and the
    lowest of their probabilities (no tag: ``""``)."""
    from crnn_ocr.classify.reading import Classifier

    if not isinstance(reader, Classifier):
        return [(r.text, r.confidence) for r in reader.read_prepared(prepared)]
    results = reader.classify_prepared(prepared)
    if reader.multilabel:
        return [(",".join(r.labels), min((r.probabilities[t] for t in r.labels), default=0.0)) for r in results]
    return [(r.label, r.probability) for r in results]
