"""Optional compiled kernels (numba) for the beam search's frames and for the exact score and the
Viterbi spans of one labelling.

With numba installed (``pip install crnn_ocr[fast]``) the per-frame and per-state loops of
``ctc._Labelling`` run compiled instead of as a numpy call per frame or state, and so does each
frame of ``ctc._prefix_beam_search`` (without a scorer or pruning) up to the choice of the next
beam (that choice, an ``argpartition`` whose ties numpy breaks its own way, and the Python
bookkeeping of prefixes stay as they are). Each kernel does the same floating-point operations
in the same order as the numpy code it replaces (``np.add``, ``np.multiply``, ``np.maximum`` and
``np.logaddexp`` element by element, the accumulations left to right), so the beam's prefixes
and tracked scores, exact scores, best-path log-probs and spans are bitwise those of the
pure-numpy path; ``tests/test_decoding_kernels.py`` checks that on thousands of inputs. Without numba, or with
``CRNN_OCR_NUMBA=0`` in the environment, ``get()`` returns ``None`` and numpy does the work.

The kernels compile on first use (a few seconds; numba caches the machine code on disk, and a
later process loads it in ~0.4 s, numba's import included) and release the GIL, so decoding
threads run them in parallel.
"""

from __future__ import annotations

import os
from typing import Any

_state: dict[str, Any] = {}


def get() -> Any:
    """The compiled kernels (the module ``_numba_kernels``: ``forward_frames``, ``forward_log``,
    ``viterbi``, ``beam_frame``), or ``None`` without numba or with ``CRNN_OCR_NUMBA=0``.
    Decided once per process."""
    if "kernels" not in _state:
        _state["kernels"] = None if os.environ.get("CRNN_OCR_NUMBA", "1") == "0" else _load()
    return _state["kernels"]


def _load() -> Any:
    try:
        from crnn_ocr.decoding import _numba_kernels
    except ImportError:  # no numba
        return None
    return _numba_kernels
