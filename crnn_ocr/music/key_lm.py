"""A language model of the key signature and the bar for the beam search of score readings.

In the semantic encoding a note's pitch carries its sounding alteration (``F#4`` in D major,
whether the key signature or an accidental shows the sharp), so a reader must carry the key
signature from the start of the staff to every note, and an accidental to the end of its bar.
``KeyAccidentalLM`` says what music theory expects there: a note's alteration is the one last
written for that step and octave in the bar, else the key signature's for that step; the model
gives that alteration probability ``p_expected`` and each other alteration an equal share of the
rest. Everything else (clefs, rests, durations, which step) it leaves to the recognizer (log
probability 0). It follows the decoder's ``LanguageModel`` protocol, so a score reading uses it as
any n-gram model, with its weight ``alpha``::

    lm = KeyAccidentalLM.train(labels)     # p_expected counted on training sequences
    rec = load_recognizer("score", beam_width=10, lm=lm, alpha=1.0)

A context is ``(key, "F4=1", ...)``: the key signature's name and the alterations written so far
in the bar (barlines and key signatures clear them).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from crnn_ocr.music.semantic import KEY_SHARPS, STEPS, key_alterations, parse_pitch, split_tokens

__all__ = ["KEY_LM_ALPHA", "KEY_LM_BEAM", "KeyAccidentalLM", "key_lm_decoder_options"]

KEY_LM_ALPHA = 1.0
"""The prior's weight ``tools/infer.py --key-lm`` uses (on held-out staves SER is flat from 0.35 up)."""
KEY_LM_BEAM = 10
"""The smallest beam ``--key-lm`` searches with."""

_ALTERATIONS = 5  # bb, b, natural, #, ##


def _note_pitch(token: str) -> tuple[str, int, int] | None:
    """(step, alteration, octave) of a note or grace note token, else None."""
    kind, _, body = token.partition("-")
    if kind not in ("note", "gracenote") or not body:
        return None
    try:
        step, alter, octave = parse_pitch(body.split("_", 1)[0])
    except ValueError:
        return None
    return step, alter, octave


def key_lm_decoder_options(beam_width: int = 1) -> dict:
    """``CTCDecoder`` options of a ``--key-lm`` reading: the prior at ``KEY_LM_ALPHA`` and a beam
    of at least ``KEY_LM_BEAM`` (``tools/infer.py`` and ``bench/bench_music.py`` read with these)."""
    return {"beam_width": max(beam_width, KEY_LM_BEAM), "lm": KeyAccidentalLM(), "alpha": KEY_LM_ALPHA}


class KeyAccidentalLM:
    """Key- and bar-aware prior on notes' alterations (see the module docstring)."""

    order = 1

    def __init__(self, p_expected: float = 0.97) -> None:
        """``p_expected``: the default is about the share counted on the training staves (96.6%)."""
        if not 0.0 < p_expected < 1.0:
            raise ValueError(f"p_expected must be in (0, 1), got {p_expected}")
        self.p_expected = float(p_expected)
        self._hit = math.log(self.p_expected)
        self._miss = math.log((1.0 - self.p_expected) / (_ALTERATIONS - 1))
        self._symbols: Sequence[str] | None = None  # the symbols _table describes (the decoder passes one tuple)
        self._table_arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._keys = {k: np.asarray([key_alterations(v)[s] for s in STEPS], dtype=np.int8) for k, v in KEY_SHARPS.items()}

    @classmethod
    def train(cls, sequences: Iterable[str | Sequence[str]], smoothing: float = 1.0) -> KeyAccidentalLM:
        """``p_expected`` = the share of notes in ``sequences`` (labels) whose alteration is the
        expected one, with ``smoothing`` added to both counts; ``ValueError`` without notes."""
        lm, hits, notes = cls(), 0, 0
        for seq in sequences:
            ctx = lm.initial_context()
            for token in split_tokens(seq):
                pitch = _note_pitch(token)
                if pitch is not None:
                    notes += 1
                    hits += pitch[1] == lm.expected(ctx, pitch[0], pitch[2])
                ctx = lm.next_context(ctx, token)
        if notes == 0:
            raise ValueError("no notes in the training sequences")
        return cls((hits + smoothing) / (notes + 2 * smoothing))

    def __repr__(self) -> str:
        return f"KeyAccidentalLM(p_expected={self.p_expected:.4f})"

    # ------------------------------------------------------------------ the LanguageModel protocol
    def initial_context(self) -> tuple[str, ...]:
        return ("CM",)  # no key signature: no alterations

    def next_context(self, context: tuple[str, ...], symbol: str) -> tuple[str, ...]:
        if symbol == "barline":
            return context[:1]
        if symbol.startswith("keySignature-"):
            key = symbol.partition("-")[2]
            return (key,) if key in KEY_SHARPS else context[:1]
        pitch = _note_pitch(symbol)
        if pitch is None:
            return context
        step, alter, octave = pitch
        entry = f"{step}{octave}="
        bar = [e for e in context[1:] if not e.startswith(entry)]
        return (context[0], *sorted([*bar, f"{entry}{alter}"]))

    def expected(self, context: tuple[str, ...], step: str, octave: int) -> int:
        """The alteration a note on ``step`` in ``octave`` is expected to have in ``context``."""
        for e in context[1:]:
            if e.startswith(f"{step}{octave}="):
                return int(e.partition("=")[2])
        return int(self._keys[context[0]][STEPS.index(step)])

    def log_probs(self, context: tuple[str, ...], symbols: Sequence[str]) -> np.ndarray:
        is_note, step_idx, octave, alter = self._table(symbols)
        expected = self._keys[context[0]][step_idx]
        for e in context[1:]:
            name, _, value = e.partition("=")
            expected[(step_idx == STEPS.index(name[0])) & (octave == int(name[1:]))] = int(value)
        out = np.where(alter == expected, self._hit, self._miss)
        out[~is_note] = 0.0
        return out

    def end_log_prob(self, context: tuple[str, ...]) -> float:
        return 0.0

    def _table(self, symbols: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per symbol: is it a note, its step's index, octave and alteration (computed once per symbol list)."""
        if self._table_arrays is None or not (symbols is self._symbols or list(symbols) == list(self._symbols)):
            pitches = [_note_pitch(s) for s in symbols]
            is_note = np.asarray([p is not None for p in pitches], dtype=bool)
            step_idx = np.asarray([STEPS.index(p[0]) if p else 0 for p in pitches], dtype=np.int8)
            octave = np.asarray([p[2] if p else -1 for p in pitches], dtype=np.int8)
            alter = np.asarray([p[1] if p else 0 for p in pitches], dtype=np.int8)
            self._symbols, self._table_arrays = symbols, (is_note, step_idx, octave, alter)
        return self._table_arrays
