"""Semantic tokens -> MEI 4, the engraving source Verovio draws (``crnn_ocr.synth.music``).

``semantic_to_mei`` writes one staff with one layer: beams by metre, accidentals against the
key signature and the measure, ties, fermatas, grace notes, key and time changes between
measures. Standard library only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from crnn_ocr.music.semantic import (
    DURATIONS,
    KEY_SHARPS,
    Symbol,
    key_alterations,
    parse_pitch,
    parse_semantic,
    time_signature_parts,
)

_MEI_ACCID = {0: "n", 1: "s", 2: "x", -1: "f", -2: "ff"}
_ATTRIBUTE_KINDS = ("clef", "keySignature", "timeSignature")


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
    symbols = parse_semantic(tokens)
    start, initial = _initial_attributes(symbols)
    writer = _MeiWriter(options or MeiOptions(), initial.get("keySignature"), initial.get("timeSignature"))
    i = start
    while i < len(symbols):
        i = writer.add(symbols, i)
    writer.close_open_measure()
    return "\n".join(_join(x) for x in [*_header(initial), *writer.lines, *_FOOTER])


def _initial_attributes(symbols: Sequence[Symbol]) -> tuple[int, dict[str, str]]:
    """(index of the first other symbol, kind -> value) of the clef/key/time tokens the
    sequence starts with (each kind once)."""
    start = 0
    initial: dict[str, str] = {}
    while start < len(symbols) and symbols[start].kind in _ATTRIBUTE_KINDS and symbols[start].kind not in initial:
        initial[symbols[start].kind] = symbols[start].value
        start += 1
    return start, initial


def _scoredef_attrs(key: str | None, time: str | None) -> str:
    """MEI scoreDef attributes of a key signature and a time signature (either may be None)."""
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


def _header(initial: dict[str, str]) -> list[str]:
    """The document up to the opening ``<section>``, with the initial clef, key and metre."""
    clef = initial.get("clef", "G2")
    head = _scoredef_attrs(initial.get("keySignature"), initial.get("timeSignature"))
    clef_attr = "" if "clef" not in initial else f' clef.shape="{clef[0]}" clef.line="{clef[1]}"'
    return [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<mei xmlns="http://www.music-encoding.org/ns/mei" meiversion="4.0.0">',
        "<meiHead><fileDesc><titleStmt><title/></titleStmt><pubStmt/></fileDesc></meiHead>",
        "<music><body><mdiv><score>",
        f'<scoreDef {head}><staffGrp><staffDef n="1" lines="5"{clef_attr}/></staffGrp></scoreDef>',
        "<section>",
    ]


_FOOTER = ["</section>", "</score></mdiv></body></music></mei>"]


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


class _MeiWriter:
    """The measures of one MEI document, written symbol by symbol.

    ``lines`` holds the closed measures and scoreDef changes. Note elements stay lists
    ``[start, tie attribute, rest]`` until the document is joined, so a later ``tie`` token can
    still set the attribute. Element ids count up across prefixes in the order elements close.
    """

    def __init__(self, opts: MeiOptions, key: str | None, time_value: str | None) -> None:
        self.opts = opts
        self._ids = iter(range(1, 1 << 30))
        self.lines: list[Any] = []
        self.key_alter = key_alterations(KEY_SHARPS.get(key or "CM", 0))
        self.time_value = time_value
        self.measure_alter: dict[tuple[str, int], int] = {}  # accidentals shown in the open measure
        self.layer: list[Any] = []  # strings and note element lists
        self.pending_beam: list[Any] = []  # note elements of the open beam group
        self.beam_group = -1
        self.position = Fraction(0)  # quarter notes into the open measure
        self.tie_open = False  # the previous note starts a tie
        self.last_note: list[str] | None = None  # for @tie

    def xid(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids)}"

    def flush_beam(self) -> None:
        if len(self.pending_beam) >= 2:
            self.layer.append([f'<beam xml:id="{self.xid("b")}">', *self.pending_beam, "</beam>"])
        else:
            self.layer.extend(self.pending_beam)
        self.pending_beam, self.beam_group = [], -1

    def close_measure(self, right: str) -> None:
        self.flush_beam()
        if self.layer or right == "single":
            self.lines.append([f'<measure xml:id="{self.xid("m")}" right="{right}"><staff n="1"><layer n="1">',
                               *self.layer, "</layer></staff></measure>"])
        self.layer, self.position = [], Fraction(0)
        self.measure_alter.clear()

    def close_open_measure(self) -> None:
        """Close a measure holding anything without a barline (no visible barline was labelled)."""
        if self.layer or self.pending_beam:
            self.close_measure("invis")

    def emit(self, elem: list[str], beamable: bool) -> None:
        unit = _beam_unit(self.time_value)
        group = int(self.position // unit)
        if not (self.opts.beams and beamable) or group != self.beam_group:
            self.flush_beam()
        if self.opts.beams and beamable:
            self.pending_beam.append(elem)
            self.beam_group = group
        else:
            self.layer.append(elem)

    def add(self, symbols: Sequence[Symbol], i: int) -> int:
        """Write ``symbols[i]``; returns the index of the next symbol to write."""
        sym = symbols[i]
        if sym.kind == "barline":
            self.close_measure("single")
        elif sym.kind == "clef":
            self.flush_beam()
            self.layer.append(f'<clef xml:id="{self.xid("c")}" shape="{sym.value[0]}" line="{sym.value[1]}"/>')
        elif sym.kind in ("keySignature", "timeSignature"):
            nxt = symbols[i + 1] if i + 1 < len(symbols) else None
            if self.change_attributes(sym, nxt):
                i += 1
        elif sym.kind == "multirest":
            self.close_open_measure()
            self.layer.append(f'<multiRest xml:id="{self.xid("r")}" num="{sym.value}"/>')
        elif sym.kind == "rest":
            dur = DURATIONS[sym.duration][0]
            attrs = f' dots="{sym.dots}"' if sym.dots else ""
            attrs += f' fermata="{self.opts.fermata_place}"' if sym.fermata else ""
            self.flush_beam()
            self.layer.append(f'<rest xml:id="{self.xid("r")}" dur="{dur}"{attrs}/>')
            self.position += sym.quarter_length
        elif sym.kind == "tie":
            self.tie_open = True
            if self.last_note is not None:
                self.last_note[1] = ' tie="m"' if self.last_note[1] == ' tie="t"' else ' tie="i"'
        else:
            self.add_note(sym)
        return i + 1

    def change_attributes(self, sym: Symbol, nxt: Symbol | None) -> bool:
        """A key or time change (with ``nxt`` when it is the other of the two): they live between
        measures, so an open measure is closed without a barline. Returns whether ``nxt`` was used."""
        self.close_open_measure()
        key = sym.value if sym.kind == "keySignature" else None
        time = sym.value if sym.kind == "timeSignature" else None
        paired = False
        if nxt is not None and nxt.kind in ("keySignature", "timeSignature") and nxt.kind != sym.kind:
            paired = True
            key = key or (nxt.value if nxt.kind == "keySignature" else None)
            time = time or (nxt.value if nxt.kind == "timeSignature" else None)
        if key is not None:
            self.key_alter = key_alterations(KEY_SHARPS[key])
        if time is not None:
            self.time_value = time
        self.lines.append(f'<scoreDef xml:id="{self.xid("s")}" {_scoredef_attrs(key, time)}/>')
        return paired

    def add_note(self, sym: Symbol) -> None:
        """A note or grace note, with the accidental it needs, a tie it ends, and its beam."""
        step, alter, octave = parse_pitch(sym.pitch)
        expected = self.measure_alter.get((step, octave), self.key_alter[step])
        if self.tie_open:
            accid = f' accid.ges="{_MEI_ACCID[alter]}"' if alter else ""
        elif alter != expected:
            accid = f' accid="{_MEI_ACCID[alter]}"'
        else:
            accid = f' accid.ges="{_MEI_ACCID[alter]}"' if alter else ""
        self.measure_alter[(step, octave)] = alter
        attrs = f' dots="{sym.dots}"' if sym.dots else ""
        if sym.kind == "gracenote":
            attrs += f' grace="{self.opts.grace}"'
        if sym.fermata:
            attrs += f' fermata="{self.opts.fermata_place}"'
        elem = [f'<note xml:id="{self.xid("n")}" pname="{step.lower()}" oct="{octave}" dur="{DURATIONS[sym.duration][0]}"',
                ' tie="t"' if self.tie_open else "", attrs + accid + "/>"]
        self.tie_open = False
        self.last_note = elem
        if sym.kind == "gracenote":
            self.flush_beam()
            self.layer.append(elem)
        else:
            self.emit(elem, beamable=DURATIONS[sym.duration][1] <= Fraction(1, 2))
            self.position += sym.quarter_length


def _join(part: Any) -> str:
    """Nested lists of strings -> one string."""
    return part if isinstance(part, str) else "".join(_join(x) for x in part)
