"""crnn_ocr: CRNN + CTC sequence recognition for text, music staves and speech.

Importing the package is cheap and never imports torch: names are resolved lazily, so
``from crnn_ocr import CTCDecoder`` works in a torch-free deployment.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Alphabet": "crnn_ocr.alphabet",
    "BLANK": "crnn_ocr.alphabet",
    "CTCDecoder": "crnn_ocr.decoding",
    "DecodeResult": "crnn_ocr.decoding",
    "Recognizer": "crnn_ocr.recognizer",
    "load_recognizer": "crnn_ocr.recognizer",
    "load_pretrained": "crnn_ocr.recognizer",
    "Frontend": "crnn_ocr.frontend",
    "ImageFrontend": "crnn_ocr.frontend",
    "CRNN": "crnn_ocr.model",
    "ModelConfig": "crnn_ocr.model",
    "LmdbDataset": "crnn_ocr.data",
    "TrainConfig": "crnn_ocr.engine",
    "train": "crnn_ocr.engine",
    "load_checkpoint": "crnn_ocr.checkpoint",
    "save_checkpoint": "crnn_ocr.checkpoint",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'crnn_ocr' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
