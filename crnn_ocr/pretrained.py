"""Models that ship inside the package, so reading works the moment crnn_ocr is installed.

    from crnn_ocr.recognizer import load_pretrained, load_recognizer
    rec = load_pretrained("english")          # a Recognizer (PyTorch), like load_recognizer(path)
    rec = load_recognizer("english")          # its ONNX export when onnxruntime is installed
    rec.read("word.png").text

This module is the table of shipped files (``MODELS``) and their paths; loading is
``crnn_ocr.recognizer``'s. ``tools/infer.py`` uses the model of the input's kind when no
``--checkpoint`` is given. Each
entry says what it reads and how it was made (README "Pretrained models" has the numbers).
The files are inference-only checkpoints (``tools/export.py --format pt``) under
``crnn_ocr/weights/``; a model may also ship its ONNX export (``tools/export.py``, same
weights), which ``infer.py`` prefers when onnxruntime is installed: it starts without torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class PretrainedModel:
    """One shipped model: its name, what it reads (checkpoint ``kind``), file and a one-line summary."""

    name: str
    kind: str
    filename: str
    summary: str
    onnx_filename: str | None = None  # the same weights exported to ONNX, if shipped
    vocabulary: tuple[str, ...] = ()  # a closed-vocabulary model's words: its default lexicon (see default_lexicon)

    @property
    def path(self) -> Path:
        return WEIGHTS_DIR / self.filename

    @property
    def onnx_path(self) -> Path | None:
        return WEIGHTS_DIR / self.onnx_filename if self.onnx_filename else None


MODELS: dict[str, PretrainedModel] = {
    m.name: m
    for m in (
        PretrainedModel(
            "english", "text", "english_crnn_compact.pt",
            "English words and short text: the 95 printable ASCII symbols (both cases, digits, punctuation, space); "
            "crnn_compact, 32 px gray input stretched 1.5x in width; synthetic words in 764 fonts "
            "(datasets/synth_text.py: scene and printed text, then words made to look like photos) mixed with real "
            "crops (IIIT5K train outside the dev/test splits, ICDAR 2015 train), new crops made from those (StackMix, "
            "teacher-checked degraded copies) and text-free crops labelled empty, fine-tuned from the synthetic-only model; "
            "words read with confidence under 0.5 are read again 15% narrower and wider (crnn_ocr.views.Recheck)",
            onnx_filename="english_crnn_compact.onnx",
        ),
        PretrainedModel(
            "spoken_digits", "speech", "spoken_digits.pt",
            "spoken digit strings (zero..nine) and yes/no, English, 8 kHz and up; characters a-z ' and space; "
            "crnn_compact on 32 log-mels, started from the english model; FSDD's four speakers and 120 espeak-ng, flite and festival voices; "
            "read as sequences of its twelve words unless another lexicon (or none) is asked for",
            vocabulary=("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "yes", "no"),
        ),
        PretrainedModel(
            "digit_classifier", "classify", "digit_classifier.pt",
            "one spoken digit per clip (zero..nine), 8 kHz and up; crnn_compact on 32 log-mels with attention pooling, "
            "started from the english model; four FSDD speakers and 120 voices of three TTS engines, speaker augmentation "
            "and word ends cut tightly as FSDD's are",
        ),
        PretrainedModel(
            "digit_tagger", "tag", "digit_tagger.pt",
            "which digits (zero..nine) are spoken in a clip, 1-3 of them in different voices over noise, 8 kHz and up; "
            "crnn_compact on 32 log-mels with max + mean pooling, started from the english model",
        ),
        PretrainedModel(
            "score", "score", "score_crnn_compact.pt",
            "monophonic staves (one staff per image) in PrIMuS's semantic vocabulary (1,781 tokens); crnn_compact, "
            "128 px gray input at half width, started from the 64 px score model; Verovio engravings of folk tunes, "
            "Palestrina, Bach and Monteverdi parts and random melodies (datasets/synth_music.py)",
        ),
    )
}
DEFAULT_FOR_KIND = {"text": "english", "speech": "spoken_digits", "score": "score"}


def pretrained_path(name: str) -> Path:
    """The checkpoint file of shipped model ``name``; ``ValueError`` if there is no such model
    or its file is missing from this installation."""
    model = MODELS.get(name)
    if model is None:
        raise ValueError(f"no pretrained model {name!r}; available: {', '.join(sorted(MODELS))}")
    if not model.path.is_file():
        raise ValueError(f"{model.path}: the pretrained {name!r} weights are missing from this installation")
    return model.path


def default_lexicon(source: object) -> list[str] | None:
    """The lexicon a shipped closed-vocabulary model reads with when loaded by name and no
    ``lexicon`` is given (``spoken_digits``: any sequence of its twelve words, as a digit
    recognizer's grammar would; on speakers it never heard this reads 5 points more single
    digits than its greedy letters, BENCHMARKS.md); ``None`` for a file or an open-vocabulary model."""
    model = shipped(source)
    return (list(model.vocabulary) or None) if model else None


def shipped(source: object) -> PretrainedModel | None:
    """The shipped model ``source`` names, or ``None`` for anything else (a file of that name wins)."""
    path = os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
    return MODELS[path] if path in MODELS and not os.path.exists(path) else None


def default_model(kind: str) -> str:
    """The name of the shipped model for inputs of ``kind`` ("text", "score", "speech")."""
    if kind not in DEFAULT_FOR_KIND:
        raise ValueError(f"no pretrained {kind} model ships with crnn_ocr; give a checkpoint")
    return DEFAULT_FOR_KIND[kind]


def checkpoint_or_default(checkpoint: str | None, kind: str, *, name: str | None = None) -> str:
    """``checkpoint`` if given, else the checkpoint file of shipped model ``name`` (default: the
    one for ``kind``). Whether to read a shipped model's ONNX export instead is
    ``crnn_ocr.recognizer.resolve_model``'s decision."""
    if checkpoint is not None:
        return checkpoint
    return str(pretrained_path(name or default_model(kind)))
