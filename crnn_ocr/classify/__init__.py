"""The classification wing: one label (classify) or several (tag) per clip, with the CRNN family.

    from crnn_ocr.classify import load_classifier
    clf = load_classifier("runs/digits/best.pt")      # or its .onnx export (no torch)
    clf.classify("clip.wav")                          # ClassifyResult(label, probability, labels, probabilities)

- ``classes``: ``ClassList``, the class list file that replaces the alphabet;
- ``config``: ``ClassifierConfig`` (archs: CRNN trunks with temporal pooling, Convolutional RNN,
  its 1-D convolution twin, PANNs-style CNNs); ``models`` builds them, ``convrnn`` holds ``ConvRNN1d``;
- ``task``: the ``classify`` and ``tag`` tasks the core trainer runs (losses, mixup, balanced
  sampling, validation), registered through ``crnn_ocr.tasks.TASK_MODULES``;
- ``metrics``: accuracy, confusion matrix, mAP, AUC, d-prime, per-class thresholds (numpy);
- ``reading``: ``Classifier``, ``ClassifyResult``, ``load_classifier`` (PyTorch or onnxruntime);
- ``export``: ONNX export.

The wing imports the core; no core module imports it. Importing this package imports neither
torch nor numpy: names load on first use, so an onnxruntime deployment stays torch-free.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ClassList": "crnn_ocr.classify.classes",
    "ClassifierConfig": "crnn_ocr.classify.config",
    "ConvRNN1d": "crnn_ocr.classify.convrnn",
    "Classifier": "crnn_ocr.classify.reading",
    "ClassifyResult": "crnn_ocr.classify.reading",
    "ClipTooShort": "crnn_ocr.classify.reading",
    "load_classifier": "crnn_ocr.classify.reading",
    "build_classifier": "crnn_ocr.classify.models",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'crnn_ocr.classify' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
