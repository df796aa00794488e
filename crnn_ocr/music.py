"""PrIMuS semantic encoding: parse, validate, engrave (MEI) and convert to/from music21.

A monophonic staff is read as a sequence of tokens (Calvo-Zaragoza & Rizo, 2018):

    clef-G2 keySignature-DM timeSignature-3/4 note-A4_quarter. note-B4_eighth barline ...

Token grammar (the semantic vocabulary PrIMuS ships, plus double accidentals):

    clef-<C|F|G><line 1-5>            keySignature-<major key>M (CM, GM, ..., C#M, FM, ..., CbM)
    timeSignature-<n>/<d> | -C | -C/  barline          tie (joins the notes before and after it)
    note-<pitch>_<duration><dots>[_fermata]     gracenote-<pitch>_<duration><dots>
    rest-<duration><dots>[_fermata]   multirest-<bars>

``pitch`` is the sounding written pitch with its accidental (``Bb4`` in E-flat major, whether
the key signature or an accidental shows the flat), ``duration`` one of ``DURATIONS``, ``dots``
zero to two ``.``.

* ``parse_token`` / ``validate_semantic``: grammar and music checks as a list of ``TokenIssue``
  (token index + what is wrong), never an exception for bad input;
* ``semantic_to_mei``: engraving source for Verovio (beams, accidentals against key signature
  and measure, ties, fermatas, grace notes), used by ``datasets/synth_music.py``;
* ``semantic_to_stream`` / ``write_score``: a music21 score -> MusicXML and MIDI files;
* ``stream_to_semantic``: a music21 stream (parsed ABC, MusicXML...) -> tokens, restricted to
  what the encoding holds (``UnsupportedMusic`` for chords, tuplets, voices, ...).

Parsing, validation and MEI need only the standard library; music21 is imported on use
(``pip install crnn_ocr[music]``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

# duration name -> (MEI @dur, length in quarter notes before dots)
DURATIONS: dict[str, tuple[str, Fraction]] = {
    "quadruple_whole": ("long", Fraction(16)),
    "double_whole": ("breve", Fraction(8)),
    "whole": ("1", Fraction(4)),
    "half": ("2", Fraction(2)),
    "quarter": ("4", Fraction(1)),
    "eighth": ("8", Fraction(1, 2)),
    "sixteenth": ("16", Fraction(1, 4)),
    "thirty_second": ("32", Fraction(1, 8)),
    "sixty_fourth": ("64", Fraction(1, 16)),
    "hundred_twenty_eighth": ("128", Fraction(1, 32)),
}
# music21 duration.type -> semantic duration name
M21_TYPES: dict[str, str] = {
    "longa": "quadruple_whole", "breve": "double_whole", "whole": "whole", "half": "half", "quarter": "quarter",
    "eighth": "eighth", "16th": "sixteenth", "32nd": "thirty_second", "64th": "sixty_fourth",
    "128th": "hundred_twenty_eighth",
}
# major key name -> number of sharps (negative: flats)
KEY_SHARPS: dict[str, int] = {
    "CbM": -7, "GbM": -6, "DbM": -5, "AbM": -4, "EbM": -3, "BbM": -2, "FM": -1, "CM": 0,
    "GM": 1, "DM": 2, "AM": 3, "EM": 4, "BM": 5, "F#M": 6, "C#M": 7,
}
SHARPS_KEY: dict[int, str] = {v: k for k, v in KEY_SHARPS.items()}
CLEFS = ("C1", "C2", "C3", "C4", "C5", "F3", "F4", "F5", "G1", "G2")
STEPS = "CDEFGAB"
_SHARP_ORDER = "FCGDAEB"
_ACCID = {"": 0, "#": 1, "##": 2, "b": -1, "bb": -2}
_MEI_ACCID = {0: "n", 1: "s", 2: "x", -1: "f", -2: "ff"}

_NOTE_RE = re.compile(r"^(?P<pitch>[A-G](?:##|#|bb|b)?\d)_(?P<dur>[a-z_]+?)(?P<dots>\.{0,2})(?P<fermata>_fermata)?$")
_REST_RE = re.compile(r"^(?P<dur>[a-z_]+?)(?P<dots>\.{0,2})(?P<fermata>_fermata)?$")
_PITCH_RE = re.compile(r"^(?P<step>[A-G])(?P<acc>##|#|bb|b)?(?P<oct>\d)$")


class UnsupportedMusic(ValueError):
    """The music holds something the semantic encoding cannot express (chords, tuplets, ...)."""


class InvalidSequence(ValueError):
    """A token sequence that is not valid music; ``issues`` lists every problem."""

    def __init__(self, issues: Sequence[TokenIssue]) -> None:
        self.issues = list(issues)
        more = f" (and {len(self.issues) - 1} more)" if len(self.issues) > 1 else ""
        super().__init__(f"not a valid semantic sequence: {self.issues[0]}{more}")


@dataclass(frozen=True)
class Symbol:
    """One parsed token. ``value``: clef ``G2``, key ``EbM``, time ``3/4``, multirest bars ``23``."""

    kind: str  # clef | keySignature | timeSignature | note | gracenote | rest | multirest | barline | tie
    token: str
    value: str = ""
    pitch: str = ""
    duration: str = ""
    dots: int = 0
    fermata: bool = False

    @property
    def quarter_length(self) -> Fraction:
        """Length in quarter notes (0 for grace notes and non-durational symbols)."""
        if self.kind not in ("note", "rest") or not self.duration:
            return Fraction(0)
        base = DURATIONS[self.duration][1]
        return base * (2 - Fraction(1, 2**self.dots))


@dataclass(frozen=True)
class TokenIssue:
    """A problem with token ``index`` (0-based; -1: the sequence as a whole)."""

    index: int
    token: str
    message: str

    def __str__(self) -> str:
        if self.index < 0:
            return self.message
        return f"token {self.index} {self.token!r}: {self.message}"


def split_tokens(tokens: str | Sequence[str]) -> list[str]:
    """A label (whitespace- or tab-separated, as in ``.semantic`` files) or a token list -> tokens."""
    return tokens.split() if isinstance(tokens, str) else [str(t) for t in tokens]


def parse_pitch(pitch: str) -> tuple[str, int, int]:
    """``"Bb4"`` -> (step ``"B"``, alter ``-1``, octave ``4``); ``ValueError`` if malformed."""
    m = _PITCH_RE.match(pitch)
    if m is None:
        raise ValueError(f"malformed pitch {pitch!r} (expected a step A-G, an optional #, ##, b or bb, an octave digit)")
    return m["step"], _ACCID[m["acc"] or ""], int(m["oct"])


def format_pitch(step: str, alter: int, octave: int) -> str:
    """Inverse of ``parse_pitch``."""
    acc = {v: k for k, v in _ACCID.items()}.get(alter)
    if acc is None or step not in STEPS or not 0 <= octave <= 9:
        raise ValueError(f"pitch {step}{alter:+d} octave {octave} cannot be encoded")
    return f"{step}{acc}{octave}"


def _duration_fields(body: str, token: str, allow_fermata: bool, with_pitch: bool) -> dict[str, Any]:
    m = (_NOTE_RE if with_pitch else _REST_RE).match(body)
    if m is None and with_pitch:
        parse_pitch(body.split("_", 1)[0])  # names a malformed pitch
    if m is None:
        shape = "<pitch>_<duration>[.][_fermata]" if with_pitch else "<duration>[.][_fermata]"
        raise ValueError(f"malformed, expected {token.split('-')[0]}-{shape}")
    fields: dict[str, Any] = {"duration": m["dur"], "dots": len(m["dots"]), "fermata": bool(m["fermata"])}
    if m["dur"] not in DURATIONS:
        raise ValueError(f"unknown duration {m['dur']!r} (one of {', '.join(DURATIONS)})")
    if fields["fermata"] and not allow_fermata:
        raise ValueError("grace notes take no fermata")
    if with_pitch:
        parse_pitch(m["pitch"])
        fields["pitch"] = m["pitch"]
    return fields


def parse_token(token: str) -> Symbol:
    """One semantic token -> ``Symbol``; ``ValueError`` saying what is malformed."""
    if token in ("barline", "tie"):
        return Symbol(token, token)
    kind, sep, body = token.partition("-")
    if not sep or not body:
        raise ValueError("unknown token (expected clef-, keySignature-, timeSignature-, note-, gracenote-, rest-, multirest-, barline or tie)")
    if kind == "clef":
        if body not in CLEFS:
            raise ValueError(f"unknown clef {body!r} (one of {', '.join(CLEFS)})")
        return Symbol(kind, token, value=body)
    if kind == "keySignature":
        if body not in KEY_SHARPS:
            raise ValueError(f"unknown key signature {body!r} (a major key such as DM, BbM, F#M)")
        return Symbol(kind, token, value=body)
    if kind == "timeSignature":
        if body not in ("C", "C/"):
            m = re.fullmatch(r"([1-9]\d*)/([1-9]\d*)", body)
            if m is None:
                raise ValueError(f"malformed time signature {body!r} (n/d, C or C/)")
        return Symbol(kind, token, value=body)
    if kind == "multirest":
        if not re.fullmatch(r"[1-9]\d*", body):
            raise ValueError(f"multirest needs a positive number of bars, got {body!r}")
        return Symbol(kind, token, value=body)
    if kind in ("note", "gracenote"):
        return Symbol(kind, token, **_duration_fields(body, token, kind == "note", True))
    if kind == "rest":
        return Symbol(kind, token, **_duration_fields(body, token, True, False))
    raise ValueError(f"unknown token kind {kind!r}")


def validate_semantic(tokens: str | Sequence[str]) -> list[TokenIssue]:
    """Every problem of a semantic sequence, in order; ``[]`` means valid.

    Checks: each token's grammar; a note, rest or multirest needs a clef before it; a ``tie``
    must join two notes of the same pitch (nothing but barlines, clefs, keys or time signatures
    between them); a multirest stands alone in its bar; the sequence is not empty.
    """
    toks = split_tokens(tokens)
    if not toks:
        return [TokenIssue(-1, "", "empty sequence: no tokens")]
    issues: list[TokenIssue] = []
    symbols: list[Symbol | None] = []
    for i, tok in enumerate(toks):
        try:
            symbols.append(parse_token(tok))
        except ValueError as e:
            issues.append(TokenIssue(i, tok, str(e)))
            symbols.append(None)
    have_clef = False
    bar_content = 0  # notes/rests in the current bar
    bar_has_multirest = False
    for i, sym in enumerate(symbols):
        if sym is None:
            continue
        if sym.kind == "clef":
            have_clef = True
        elif sym.kind in ("note", "gracenote", "rest", "multirest"):
            if not have_clef:
                issues.append(TokenIssue(i, sym.token, f"{sym.kind} before any clef"))
            if sym.kind == "multirest" and bar_content:
                issues.append(TokenIssue(i, sym.token, "multirest must stand alone in its bar"))
            elif sym.kind != "multirest" and bar_has_multirest:
                issues.append(TokenIssue(i, sym.token, f"{sym.kind} in the bar of a multirest"))
            bar_content += 1
            bar_has_multirest |= sym.kind == "multirest"
        elif sym.kind == "barline":
            bar_content, bar_has_multirest = 0, False
        elif sym.kind == "tie":
            prev = _neighbour_note(symbols, i, -1)
            nxt = _neighbour_note(symbols, i, +1)
            if prev is _MALFORMED or nxt is _MALFORMED:
                continue  # already reported
            if prev is None or prev.kind != "note":
                issues.append(TokenIssue(i, sym.token, "tie does not follow a note"))
            elif nxt is None or nxt.kind != "note":
                issues.append(TokenIssue(i, sym.token, "tie is not followed by a note"))
            elif _same_pitch(prev.pitch, nxt.pitch) is False:
                issues.append(TokenIssue(i, sym.token, f"tie joins different pitches {prev.pitch} and {nxt.pitch}"))
    return sorted(issues, key=lambda x: x.index)


_MALFORMED = Symbol("malformed", "")
_PASS_THROUGH = ("barline", "clef", "keySignature", "timeSignature")


def _neighbour_note(symbols: Sequence[Symbol | None], i: int, step: int) -> Symbol | None:
    """The first note/rest/gracenote/multirest/tie from ``i`` in direction ``step``, skipping
    barlines and clef/key/time changes; ``None`` at the end, ``_MALFORMED`` at a malformed token."""
    j = i + step
    while 0 <= j < len(symbols):
        sym = symbols[j]
        if sym is None:
            return _MALFORMED
        if sym.kind not in _PASS_THROUGH:
            return sym
        j += step
    return None


def _same_pitch(a: str, b: str) -> bool:
    sa, aa, oa = parse_pitch(a)
    sb, ab, ob = parse_pitch(b)
    return 12 * oa + "C D EF G A B".index(sa) + aa == 12 * ob + "C D EF G A B".index(sb) + ab


def parse_semantic(tokens: str | Sequence[str]) -> list[Symbol]:
    """Validated symbols; ``InvalidSequence`` (a ``ValueError``) listing every issue otherwise."""
    issues = validate_semantic(tokens)
    if issues:
        raise InvalidSequence(issues)
    return [parse_token(t) for t in split_tokens(tokens)]


# ------------------------------------------------------------------------------ measures
def time_signature_parts(value: str) -> tuple[int, int, str]:
    """``"3/4"`` -> (3, 4, ""); ``"C"`` -> (4, 4, "common"); ``"C/"`` -> (2, 2, "cut")."""
    if value == "C":
        return 4, 4, "common"
    if value == "C/":
        return 2, 2, "cut"
    n, d = value.split("/")
    return int(n), int(d), ""


def _beam_unit(time_value: str | None) -> Fraction:
    """Length in quarter notes of one beam group under a time signature."""
    if time_value is None:
        return Fraction(1)
    n, d, _ = time_signature_parts(time_value)
    if d == 8 and n % 3 == 0 and n > 3:
        return Fraction(3, 2)
    if d == 16 and n % 3 == 0 and n > 3:
        return Fraction(3, 4)
    return Fraction(1)


def key_alterations(sharps: int) -> dict[str, int]:
    """Step -> alteration implied by a key signature of ``sharps`` (negative: flats)."""
    out = dict.fromkeys(STEPS, 0)
    if sharps >= 0:
        for step in _SHARP_ORDER[:sharps]:
            out[step] = 1
    else:
        for step in _SHARP_ORDER[::-1][: -sharps]:
            out[step] = -1
    return out


# ------------------------------------------------------------------------------ MEI
@dataclass(frozen=True)
class MeiOptions:
    """Engraving choices for ``semantic_to_mei`` that do not change the music."""

    beams: bool = True
    grace: str = "acc"  # MEI note@grace: "acc" (slashed) or "unacc"
    fermata_place: str = "above"


def semantic_to_mei(tokens: str | Sequence[str], options: MeiOptions | None = None) -> str:
    """A valid semantic sequence -> an MEI 4 document for Verovio (one staff, one layer).

    Each ``barline`` closes a measure with a single barline; symbols after the last barline form a
    measure with no visible barline, so the engraving shows exactly the labelled barlines.
    Accidentals are written where the key signature and earlier notes of the measure do not
    already imply the pitch (the continuation of a tie shows none). ``InvalidSequence`` for an
    invalid sequence.
    """
    opts = options or MeiOptions()
    symbols = parse_semantic(tokens)
    ids = iter(range(1, 1 << 30))

    def xid(prefix: str) -> str:
        return f"{prefix}{next(ids)}"

    # initial attributes: the clef/key/time tokens before the first other token
    start = 0
    initial: dict[str, str] = {}
    while start < len(symbols) and symbols[start].kind in ("clef", "keySignature", "timeSignature") \
            and symbols[start].kind not in initial:
        initial[symbols[start].kind] = symbols[start].value
        start += 1

    def scoredef_attrs(key: str | None, time: str | None) -> str:
        attrs = []
        if key is not None:
            sharps = KEY_SHARPS[key]
            attrs.append(f'key.sig="{abs(sharps)}{"s" if sharps > 0 else "f"}"' if sharps else 'key.sig="0"')
        if time is not None:
            n, d, sym = time_signature_parts(time)
            attrs.append(f'meter.count="{n}" meter.unit="{d}"')
            if sym:
                attrs.append(f'meter.sym="{sym}"')
        return " ".join(attrs)

    clef = initial.get("clef", "G2")
    head = scoredef_attrs(initial.get("keySignature"), initial.get("timeSignature"))
    clef_attr = "" if "clef" not in initial else f' clef.shape="{clef[0]}" clef.line="{clef[1]}"'
    lines: list[Any] = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<mei xmlns="http://www.music-encoding.org/ns/mei" meiversion="4.0.0">',
        "<meiHead><fileDesc><titleStmt><title/></titleStmt><pubStmt/></fileDesc></meiHead>",
        "<music><body><mdiv><score>",
        f'<scoreDef {head}><staffGrp><staffDef n="1" lines="5"{clef_attr}/></staffGrp></scoreDef>',
        "<section>",
    ]

    sharps = KEY_SHARPS.get(initial.get("keySignature", "CM"), 0)
    time_value = initial.get("timeSignature")
    key_alter = key_alterations(sharps)
    measure_alter: dict[tuple[str, int], int] = {}
    layer: list[Any] = []  # strings and note element lists
    pending_beam: list[Any] = []  # note elements of the open beam group
    beam_group = -1
    position = Fraction(0)
    tie_open = False  # the previous note starts a tie
    last_note_idx: int | None = None  # index into layer (or beam) of the last note, for @tie

    def flush_beam() -> None:
        nonlocal pending_beam, beam_group
        if len(pending_beam) >= 2:
            layer.append([f'<beam xml:id="{xid("b")}">', *pending_beam, "</beam>"])
        else:
            layer.extend(pending_beam)
        pending_beam, beam_group = [], -1

    def close_measure(right: str) -> None:
        nonlocal layer, position
        flush_beam()
        if layer or right == "single":
            lines.append([f'<measure xml:id="{xid("m")}" right="{right}"><staff n="1"><layer n="1">',
                          *layer, "</layer></staff></measure>"])
        layer, position = [], Fraction(0)
        measure_alter.clear()

    # note elements stay lists [start, tie attribute, rest] until the document is joined, so a
    # later ``tie`` token can still set the attribute
    note_elems: list[list[str]] = []

    def emit(elem: list[str], beamable: bool) -> None:
        nonlocal beam_group
        unit = _beam_unit(time_value)
        group = int(position // unit)
        if not (opts.beams and beamable) or group != beam_group:
            flush_beam()
        if opts.beams and beamable:
            pending_beam.append(elem)
            beam_group = group
        else:
            layer.append(elem)

    i = start
    while i < len(symbols):
        sym = symbols[i]
        if sym.kind == "barline":
            close_measure("single")
        elif sym.kind == "clef":
            flush_beam()
            layer.append(f'<clef xml:id="{xid("c")}" shape="{sym.value[0]}" line="{sym.value[1]}"/>')
        elif sym.kind in ("keySignature", "timeSignature"):
            # key/time changes live between measures: close an open one without a barline
            if layer or pending_beam:
                close_measure("invis")
            key = sym.value if sym.kind == "keySignature" else None
            time = sym.value if sym.kind == "timeSignature" else None
            if i + 1 < len(symbols) and symbols[i + 1].kind in ("keySignature", "timeSignature") \
                    and symbols[i + 1].kind != sym.kind:
                i += 1
                key = key or (symbols[i].value if symbols[i].kind == "keySignature" else None)
                time = time or (symbols[i].value if symbols[i].kind == "timeSignature" else None)
            if key is not None:
                key_alter = key_alterations(KEY_SHARPS[key])
            if time is not None:
                time_value = time
            lines.append(f'<scoreDef xml:id="{xid("s")}" {scoredef_attrs(key, time)}/>')
        elif sym.kind == "multirest":
            if layer or pending_beam:
                close_measure("invis")
            layer.append(f'<multiRest xml:id="{xid("r")}" num="{sym.value}"/>')
        elif sym.kind == "rest":
            dur = DURATIONS[sym.duration][0]
            attrs = f' dots="{sym.dots}"' if sym.dots else ""
            attrs += f' fermata="{opts.fermata_place}"' if sym.fermata else ""
            flush_beam()
            layer.append(f'<rest xml:id="{xid("r")}" dur="{dur}"{attrs}/>')
            position += sym.quarter_length
        elif sym.kind == "tie":
            tie_open = True
            if last_note_idx is not None:
                elem = note_elems[last_note_idx]
                elem[1] = ' tie="m"' if elem[1] == ' tie="t"' else ' tie="i"'
        else:  # note, gracenote
            step, alter, octave = parse_pitch(sym.pitch)
            expected = measure_alter.get((step, octave), key_alter[step])
            if tie_open:
                accid = f' accid.ges="{_MEI_ACCID[alter]}"' if alter else ""
            elif alter != expected:
                accid = f' accid="{_MEI_ACCID[alter]}"'
            else:
                accid = f' accid.ges="{_MEI_ACCID[alter]}"' if alter else ""
            measure_alter[(step, octave)] = alter
            attrs = f' dots="{sym.dots}"' if sym.dots else ""
            if sym.kind == "gracenote":
                attrs += f' grace="{opts.grace}"'
            if sym.fermata:
                attrs += f' fermata="{opts.fermata_place}"'
            elem = [f'<note xml:id="{xid("n")}" pname="{step.lower()}" oct="{octave}" dur="{DURATIONS[sym.duration][0]}"',
                    ' tie="t"' if tie_open else "", attrs + accid + "/>"]
            tie_open = False
            note_elems.append(elem)
            last_note_idx = len(note_elems) - 1
            beamable = sym.kind == "note" and DURATIONS[sym.duration][1] <= Fraction(1, 2)
            if sym.kind == "gracenote":
                flush_beam()
                layer.append(elem)
            else:
                emit(elem, beamable)
                position += sym.quarter_length
        i += 1
    if layer or pending_beam:
        close_measure("invis")
    lines += ["</section>", "</score></mdiv></body></music></mei>"]
    return "\n".join(_join(x) for x in lines)


def _join(part: Any) -> str:
    """Nested lists of strings -> one string."""
    return part if isinstance(part, str) else "".join(_join(x) for x in part)


# ------------------------------------------------------------------------------ music21
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


def count_symbols(tokens: str | Sequence[str]) -> dict[str, int]:
    """How many notes (grace notes included), rests, multirests and barlines a sequence draws."""
    counts = {"note": 0, "rest": 0, "multirest": 0, "barline": 0}
    for tok in split_tokens(tokens):
        kind = tok.split("-", 1)[0]
        if kind == "gracenote":
            kind = "note"
        if kind in counts:
            counts[kind] += 1
    return counts
