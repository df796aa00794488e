"""The PrIMuS semantic encoding: tokens, their grammar, parsing and validation.

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

``parse_token`` / ``validate_semantic`` report grammar and music problems as a list of
``TokenIssue`` (token index + what is wrong), never an exception for bad input;
``parse_semantic`` returns the symbols of a valid sequence. Standard library only.
"""

from __future__ import annotations

import functools
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


def diatonic_index(pitch: str) -> int:
    """``"C#5"`` -> 5 * 7 + 0: the pitch's line or space (octave * 7 + step), its alteration
    ignored; ``ValueError`` if malformed."""
    step, _, octave = parse_pitch(pitch)
    return octave * 7 + STEPS.index(step)


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


PRIMUS_VOCABULARY_FILE = "primus_semantic_vocabulary.txt"


def primus_vocabulary() -> tuple[str, ...]:
    """PrIMuS's semantic vocabulary (1,781 tokens, in its file's order): the one fixed set of
    score labels, so that any PrIMuS-trained checkpoint's outputs line up with ours. Shipped
    with the package (MIT, see ``PRIMUS_VOCABULARY_LICENSE``); ``primus_vocabulary_file()`` is its path
    for ``tools/train.py --alphabet``."""
    return _primus_vocabulary()


def primus_vocabulary_file() -> str:
    """Path of the shipped PrIMuS semantic vocabulary file (one token a line)."""
    from importlib import resources

    return str(resources.files("crnn_ocr.music").joinpath(PRIMUS_VOCABULARY_FILE))


@functools.lru_cache(maxsize=1)
def _primus_vocabulary() -> tuple[str, ...]:
    with open(primus_vocabulary_file(), encoding="utf-8") as f:
        return tuple(line.strip() for line in f if line.strip())
