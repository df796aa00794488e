"""Optional dependencies: import one, or say in one line which extra installs it.

    ort = require("onnxruntime", "--backend onnx")
    # MissingExtra: --backend onnx needs onnxruntime, which is not installed: pip install -e ".[onnx]"

The CLIs turn ``MissingExtra`` into that line and exit code 2 (``crnn_ocr.cli.run_cli``).
"""

from __future__ import annotations

import importlib
from types import ModuleType

# module -> the pyproject extra that installs it
EXTRA_OF = {
    "onnxruntime": "onnx",
    "onnx": "onnx",
    "soundfile": "speech",
    "scipy": "speech",
    "music21": "music",
    "verovio": "music",
    "cairosvg": "music",
    "wordfreq": "synth",
}


class MissingExtra(ImportError):
    """An optional dependency is missing; the message names the feature and the extra to install."""


def require(module: str, feature: str) -> ModuleType:
    """``import module``, or ``MissingExtra`` naming ``feature`` and the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if e.name is not None and e.name.split(".")[0] != module.split(".")[0]:
            raise  # the module is there but one of its own imports failed: keep that error
        extra = EXTRA_OF.get(module.split(".")[0])
        how = f'pip install -e ".[{extra}]" (or pip install "crnn_ocr[{extra}]")' if extra else f"pip install {module}"
        raise MissingExtra(f"{feature} needs {module}, which is not installed: {how}") from None
