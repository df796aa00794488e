"""Semantic tokens <-> music21: MusicXML and MIDI files from a reading, tokens from real scores.

* ``semantic_to_stream`` / ``write_score``: a valid sequence -> a music21 score -> MusicXML and
  MIDI files (``tools/infer.py --musicxml/--midi``);
* ``measure_tokens`` / ``excerpt_tokens`` / ``stream_to_semantic``: a music21 stream (parsed ABC,
  MusicXML, ...) -> tokens, restricted to what the encoding holds (``UnsupportedMusic`` for
  chords, tuplets, voices, ...), as ``crnn_ocr.synth.music`` cuts excerpts of folk tunes.

music21 is imported on use (``pip install crnn_ocr[music]``): importing this module is cheap.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from crnn_ocr.music.semantic import (
    CLEFS,
    KEY_SHARPS,
    SHARPS_KEY,
    InvalidSequence,
    Symbol,
    TokenIssue,
    UnsupportedMusic,
    format_pitch,
    parse_pitch,
    parse_semantic,
    time_signature_parts,
    validate_semantic,
)

# music21 duration.type -> semantic duration name
M21_TYPES: dict[str, str] = {
    "longa": "quadruple_whole", "breve": "double_whole", "whole": "whole", "half": "half", "quarter": "quarter",
    "eighth": "eighth", "16th": "sixteenth", "32nd": "thirty_second", "64th": "sixty_fourth",
    "128th": "hundred_twenty_eighth",
}


def _m21_pitch(pitch: str) -> str:
    step, alter, octave = parse_pitch(pitch)
    return step + ("#" * alter if alter > 0 else "-" * -alter) + str(octave)


def _m21_duration(sym: Symbol) -> Any:
    from music21 import duration

    d = duration.Duration(type={v: k for k, v in M21_TYPES.items()}[sym.duration], dots=sym.dots)
    return d


def semantic_to_stream(tokens: str | Sequence[str]) -> Any:
    """A valid semantic sequence -> ``music21.stream.Score`` with one part of measures.

    ``InvalidSequence`` (listing every issue) for an invalid one. A multirest of ``n`` bars
    becomes ``n`` bars of whole-bar rests (4/4 when no time signature is known); an unusual time
    signature music21 cannot build (``8/12``) is reported as an issue too.
    """
    from music21 import clef as m21clef
    from music21 import expressions, key, meter, note, stream, tie

    symbols = parse_semantic(tokens)
    part = stream.Part()
    measure = stream.Measure(number=1)
    bar_length = Fraction(4)
    last_note: Any = None
    tie_open = False

    def new_measure() -> None:
        nonlocal measure
        part.append(measure)
        measure = stream.Measure(number=measure.number + 1)

    for i, sym in enumerate(symbols):
        if sym.kind == "clef":
            measure.append(m21clef.clefFromString(sym.value))
        elif sym.kind == "keySignature":
            measure.append(key.KeySignature(KEY_SHARPS[sym.value]))
        elif sym.kind == "timeSignature":
            n, d, symbol = time_signature_parts(sym.value)
            try:
                ts = meter.TimeSignature(f"{n}/{d}")
            except Exception as e:  # music21 rejects e.g. 8/12
                raise InvalidSequence([TokenIssue(i, sym.token, f"music21 cannot build this time signature ({e})")]) from None
            if symbol:
                ts.symbol = symbol
            bar_length = Fraction(n * 4, d)
            measure.append(ts)
        elif sym.kind == "barline":
            new_measure()
        elif sym.kind == "multirest":
            bars = int(sym.value)
            for b in range(bars):
                rest = note.Rest(quarterLength=bar_length)
                rest.fullMeasure = True
                measure.append(rest)
                if b < bars - 1:
                    new_measure()
        elif sym.kind == "rest":
            rest = note.Rest()
            rest.duration = _m21_duration(sym)
            if sym.fermata:
                rest.expressions.append(expressions.Fermata())
            measure.append(rest)
        elif sym.kind == "tie":
            tie_open = True
            if last_note is not None:
                last_note.tie = tie.Tie("continue" if last_note.tie is not None else "start")
        else:
            n = note.Note(_m21_pitch(sym.pitch))
            n.duration = _m21_duration(sym)
            if sym.kind == "gracenote":
                n = n.getGrace()
            if sym.fermata:
                n.expressions.append(expressions.Fermata())
            if tie_open:
                n.tie = tie.Tie("stop")
                tie_open = False
            measure.append(n)
            last_note = n
    if len(measure.notesAndRests) or measure.getElementsByClass(("Clef", "KeySignature", "TimeSignature")):
        part.append(measure)
    score = stream.Score()
    score.insert(0, part)
    return score


def write_score(
    tokens: str | Sequence[str], *, musicxml: str | os.PathLike | None = None, midi: str | os.PathLike | None = None
) -> Any:
    """Write a semantic sequence as MusicXML and/or MIDI; returns the music21 score.

    ``InvalidSequence`` (a ``ValueError`` with every issue) if the sequence is not valid music.
    """
    score = semantic_to_stream(tokens)
    if musicxml is not None:
        score.write("musicxml", fp=os.fspath(musicxml))
    if midi is not None:
        score.write("midi", fp=os.fspath(midi))
    return score


@dataclass(frozen=True)
class MeasureTokens:
    """One measure of a music21 part as tokens (its closing ``barline`` not included).

    ``tokens`` is ``None`` when the measure holds something the encoding cannot express
    (``problem`` says what); ``context`` holds the clef, key and time signature tokens in force
    where the measure starts (an excerpt beginning here is prefixed with them).
    """

    number: int | None
    tokens: tuple[str, ...] | None
    context: tuple[str, ...]
    problem: str = ""


def first_part(music: Any) -> Any:
    """The first part of a music21 score or opus (a part or measure stream is returned as is)."""
    from music21 import stream

    if isinstance(music, stream.Opus):
        scores = list(music.scores)
        if not scores:
            raise UnsupportedMusic("empty opus")
        music = scores[0]
    return music.parts[0] if isinstance(music, stream.Score) and music.parts else music


def measure_tokens(music: Any) -> list[MeasureTokens]:
    """Every measure of the first part of ``music`` as semantic tokens (see ``MeasureTokens``).

    Slurs, lyrics, dynamics, ornaments other than fermatas, articulations, repeats and text are
    dropped: the encoding has no symbol for them (and ``semantic_to_mei`` draws none).
    Unsupported: chords, tuplets, several voices, unnotatable durations, microtones, clefs with
    an octave mark.
    """
    from music21 import clef as m21clef
    from music21 import expressions, key, meter, note, stream

    part = first_part(music)
    out: list[MeasureTokens] = []
    state: dict[str, str] = {}
    for m in part.getElementsByClass(stream.Measure):
        context = tuple(state[k] for k in ("clef", "keySignature", "timeSignature") if k in state)
        tokens: list[str] = []
        try:
            if m.hasVoices():
                raise UnsupportedMusic("several voices")
            for el in m.getElementsByClass((m21clef.Clef, key.KeySignature, meter.TimeSignature, note.GeneralNote)):
                if isinstance(el, m21clef.Clef):
                    name = f"{el.sign}{el.line}" if el.sign in ("G", "F", "C") and el.line else ""
                    if name not in CLEFS or getattr(el, "octaveChange", 0):
                        raise UnsupportedMusic(f"clef {el!r} is not encoded")
                    state["clef"] = f"clef-{name}"
                    tokens.append(state["clef"])
                elif isinstance(el, key.KeySignature):
                    if el.sharps not in SHARPS_KEY:
                        raise UnsupportedMusic(f"key signature of {el.sharps} sharps")
                    state["keySignature"] = f"keySignature-{SHARPS_KEY[el.sharps]}"
                    tokens.append(state["keySignature"])
                elif isinstance(el, meter.TimeSignature):
                    state["timeSignature"] = "timeSignature-" + _time_signature_value(el)
                    tokens.append(state["timeSignature"])
                else:
                    tok = _note_token(el, expressions)
                    if tok:
                        tokens.append(tok)
                        if isinstance(el, note.Note) and el.tie is not None and el.tie.type in ("start", "continue"):
                            tokens.append("tie")
        except UnsupportedMusic as e:
            out.append(MeasureTokens(m.number, None, context, str(e)))
            continue
        out.append(MeasureTokens(m.number, tuple(tokens), context))
    return out


def excerpt_tokens(measures: Sequence[MeasureTokens], first: int = 0, count: int | None = None) -> list[str]:
    """Tokens of ``count`` measures from index ``first`` (each closed by ``barline``), prefixed
    with the clef/key/time in force there; ``UnsupportedMusic`` if one of them is unsupported.
    A tie whose end falls outside the excerpt is dropped."""
    if not measures:
        raise UnsupportedMusic("no measures")
    if not 0 <= first < len(measures):
        raise UnsupportedMusic(f"starts at measure index {first} of {len(measures)}")
    chosen = measures[first : len(measures) if count is None else first + count]
    head = chosen[0]
    body0 = head.tokens or ()
    kinds0 = {t.split("-", 1)[0] for t in body0[:3]}
    tokens = [t for t in head.context if t.split("-", 1)[0] not in kinds0]
    for m in chosen:
        if m.tokens is None:
            raise UnsupportedMusic(f"measure {m.number}: {m.problem}")
        tokens.extend(m.tokens)
        tokens.append("barline")
    bad_ties = {x.index for x in validate_semantic(tokens) if x.index >= 0 and tokens[x.index] == "tie"}
    return [t for i, t in enumerate(tokens) if i not in bad_ties]


def stream_to_semantic(music: Any, *, max_measures: int | None = None, first_measure: int = 0) -> list[str]:
    """A music21 stream (score, part or opus: its first part) -> semantic tokens.

    Reads measures ``first_measure .. first_measure + max_measures - 1`` (0-based, in order);
    see ``measure_tokens`` for what is kept and ``excerpt_tokens`` for how an excerpt is formed.
    ``UnsupportedMusic`` (a ``ValueError``) for what the encoding cannot express.
    """
    return excerpt_tokens(measure_tokens(music), first_measure, max_measures)


def _time_signature_value(ts: Any) -> str:
    if ts.symbol == "common" and ts.ratioString == "4/4":
        return "C"
    if ts.symbol == "cut" and ts.ratioString == "2/2":
        return "C/"
    if re.fullmatch(r"[1-9]\d*/[1-9]\d*", ts.ratioString):
        return ts.ratioString
    raise UnsupportedMusic(f"time signature {ts.ratioString}")


def _note_token(el: Any, expressions: Any) -> str:
    """A music21 note or rest -> its token ('' for an unpitched/unsupported-silent element)."""
    from music21 import note

    d = el.duration
    if isinstance(el, note.Unpitched) or el.isChord:
        raise UnsupportedMusic("chord or unpitched note")
    if d.tuplets:
        raise UnsupportedMusic("tuplet")
    is_grace = d.isGrace
    if d.type not in M21_TYPES or d.dots > 2:
        raise UnsupportedMusic(f"duration {d.type} with {d.dots} dots")
    dur = M21_TYPES[d.type] + "." * d.dots
    fermata = "_fermata" if any(isinstance(x, expressions.Fermata) for x in el.expressions) and not is_grace else ""
    if isinstance(el, note.Rest):
        if is_grace:
            return ""
        return f"rest-{dur}{fermata}"
    p = el.pitch
    alter = p.accidental.alter if p.accidental is not None else 0
    if alter != int(alter) or abs(alter) > 2:
        raise UnsupportedMusic(f"microtonal or triple accidental {p}")
    try:
        pitch = format_pitch(p.step, int(alter), p.octave if p.octave is not None else 4)
    except ValueError as e:
        raise UnsupportedMusic(f"{e}") from None
    if is_grace:
        return f"gracenote-{pitch}_{dur}"
    return f"note-{pitch}_{dur}{fermata}"
