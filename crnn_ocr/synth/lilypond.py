"""A second engraver for synthetic staves: PrIMuS semantic tokens -> LilyPond -> gray images.

    images = engrave_many([tokens, ...], [LilyOptions.random(rng), ...], height=96)

Debian's ``lilypond`` (2.24) draws the staves, so that training staves are not all Verovio's.
The LilyPond source is written from the tokens here (``lilypond_score``) rather than through
MusicXML and ``musicxml2ly``: music21's MusicXML export and one ``musicxml2ly`` process cost
about 0.5 s per staff, more than LilyPond itself per staff once batched, and its output would
still need rewriting to draw exactly the labelled symbols.

What is drawn is what the label says:

* every ``barline`` token is an explicit ``\\bar "|"`` ending a LilyPond measure whose length is
  set to what the bar holds (a pickup is a ``\\partial``; an open last bar or a time change
  inside a bar ends with an invisible bar), so LilyPond adds no barline of its own;
* accidentals are written by the rule ``crnn_ocr.music.mei`` uses for Verovio (against the key
  signature and earlier notes of the bar, none on the continuation of a tie); LilyPond's own
  accidental rules are switched off;
* ``C`` and ``C/`` are drawn as symbols, every ``n/d`` as numbers; a multirest is one
  multi-measure rest with its count (``multirest-1``: LilyPond's whole-bar rest); a clef change at a barline comes after the barline, as the
  tokens have it; grace notes before a barline follow the note they come after.

All staves of one ``engrave_many`` call are ``\\book`` blocks of one file, engraved by one
``lilypond`` process (its start-up costs about a second) into gray PNGs cropped to the staff,
each at a resolution chosen from its staff size and the requested height (``resolution``).
LilyPond's own PNG path (Ghostscript) is used, not its SVG backend, which spends about three
times as long writing glyph outlines. With the layout final, a page-breaking hook
(``REPORT_SCHEME``) prints every drawn note head, rest, multirest and its number, barline,
clef, key and time signature, tie and fermata with its position; ``check_agreement`` compares
them with the label (order left to right, counts, one system), and any LilyPond warning on a
staff's lines fails it too. The PNG is then cropped to the ink, given margins and resized
(``finish_image``). A staff that fails anywhere is ``None``. No torch; no network.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from crnn_ocr.music.semantic import (
    KEY_SHARPS,
    InvalidSequence,
    Symbol,
    UnsupportedMusic,
    key_alterations,
    parse_pitch,
    parse_semantic,
    split_tokens,
    time_signature_parts,
)

LILYPOND_CLEFS = {"G1": "french", "G2": "treble", "F3": "varbaritone", "F4": "bass", "F5": "subbass",
                  "C1": "soprano", "C2": "mezzosoprano", "C3": "alto", "C4": "tenor", "C5": "baritone"}
_DURATION = {"quadruple_whole": "\\longa", "double_whole": "\\breve", "whole": "1", "half": "2", "quarter": "4",
             "eighth": "8", "sixteenth": "16", "thirty_second": "32", "sixty_fourth": "64", "hundred_twenty_eighth": "128"}
_ALTER = {-2: "eses", -1: "es", 0: "", 1: "is", 2: "isis"}
# grob -> symbol class of the agreement check
GROB_CLASSES = {"NoteHead": "note", "Rest": "rest", "MultiMeasureRest": "multirest", "MultiMeasureRestNumber": "mmnumber",
                "BarLine": "barline", "Clef": "clef", "KeySignature": "key", "TimeSignature": "time", "Tie": "tie",
                "Script": "fermata"}
_ORDERED = ("note", "rest", "multirest", "barline", "clef", "key", "time")  # checked in left-to-right order
# break-align order at the end and in the middle of a line: a barline before a clef change
_BREAK_ORDER = "(left-edge cue-end-clef ambitus breathing-sign staff-bar clef cue-clef key-cancellation key-signature time-signature custos)"
_BEGIN_ORDER = "(left-edge ambitus breathing-sign clef key-cancellation key-signature time-signature staff-bar custos)"

# Page breaking that puts the staff on one line (ly:one-line-breaking), then, with the layout
# final, prints every drawn grob of GROB_CLASSES as "@grob <staff-id> <grob> <left x>" on stdout
# and sets the PNG resolution of the book from its \paper's staff-resolution.
REPORT_SCHEME = r"""
#(define report-grobs '(GROBS))
#(define (drawn? grob)
  (let ((st (ly:grob-property grob 'stencil #f)))
    (and (grob::is-live? grob) (ly:stencil? st) (not (ly:stencil-empty? st))
         (> (interval-length (ly:stencil-extent st X)) 0))))
#(define (report-line-breaking paper-book)
  (let* ((paper (ly:paper-book-paper paper-book))
         (id (ly:output-def-lookup paper 'staff-id ""))
         (resolution (ly:output-def-lookup paper 'staff-resolution #f))
         (pages (ly:one-line-breaking paper-book)))
    (if resolution (ly:set-option 'resolution resolution))
    (for-each
     (lambda (page)
       (for-each
        (lambda (line)
          (let ((sys (ly:prob-property line 'system-grob #f)))
            (if (ly:grob? sys)
                (begin
                  (format #t "@system ~a\n" id)
                  (for-each
                   (lambda (g)
                     (if (and (memq (grob::name g) report-grobs) (drawn? g))
                         (format #t "@grob ~a ~a ~a\n" id (grob::name g) (car (ly:grob-extent g sys X)))))
                   (ly:grob-array->list (ly:grob-object sys 'all-elements)))))))
        (ly:prob-property page 'lines '())))
     pages)
    pages))
""".replace("GROBS", " ".join(GROB_CLASSES))

HEADER = rf"""\version "2.24.0"
\pointAndClickOff
{REPORT_SCHEME}
\header {{ tagline = ##f }}
\paper {{
  indent = 0 short-indent = 0 print-page-number = ##f print-first-page-number = ##f
  page-breaking = #report-line-breaking
}}
\layout {{
  \context {{ \Score
    \remove Bar_number_engraver
    skipBars = ##t
    \override BreakAlignment.break-align-orders = #(vector '{_BREAK_ORDER} '{_BREAK_ORDER} '{_BEGIN_ORDER})
  }}
  \context {{ \Staff
    autoAccidentals = #'()
    autoCautionaries = #'()
  }}
}}
"""


class LilyPondMissing(RuntimeError):
    """The ``lilypond`` program is not on PATH (Debian: ``apt-get install lilypond``)."""


# ------------------------------------------------------------------------------ options
@dataclass(frozen=True)
class LilyOptions:
    """How one staff is engraved: LilyPond layout choices and the image margins.

    LilyPond ships one music font (Emmentaler), in optical sizes 11 to 26 pt that
    ``staff_size`` picks among; thicknesses are LilyPond's own units (multiples of the staff
    line thickness, ``beam_thickness`` in staff spaces). Margins are fractions of the height of
    the drawn content (white space added around the cropped staff before the resize).
    """

    staff_size: float = 20.0
    spacing_increment: float = 1.2  # SpacingSpanner: space added per doubling of duration
    shortest_duration_space: float = 2.0  # SpacingSpanner: space of the shortest note
    staff_line_thickness: float = 1.0
    stem_thickness: float = 1.3
    beam_thickness: float = 0.48
    bar_thickness: float = 1.9
    ledger_length: float = 0.25  # LedgerLineSpanner.length-fraction
    auto_beam: bool = True
    slashed_grace: bool = True
    key_cancellation: bool = True  # naturals cancelling the old key at a key change
    church_rests: bool = True  # multirests of up to 10 bars as breve/longa rests, else a bar with a number
    margin_top: float = 0.1
    margin_bottom: float = 0.1
    margin_left: float = 0.1
    margin_right: float = 0.1

    @classmethod
    def random(cls, rng: np.random.Generator) -> LilyOptions:
        return cls(
            staff_size=float(rng.uniform(11, 26)),
            spacing_increment=float(rng.uniform(0.7, 2.0)),
            shortest_duration_space=float(rng.uniform(1.4, 3.0)),
            staff_line_thickness=float(rng.uniform(0.6, 1.6)),
            stem_thickness=float(rng.uniform(0.9, 1.9)),
            beam_thickness=float(rng.uniform(0.38, 0.6)),
            bar_thickness=float(rng.uniform(1.2, 3.0)),
            ledger_length=float(rng.uniform(0.15, 0.4)),
            auto_beam=bool(rng.random() < 0.85),
            slashed_grace=bool(rng.random() < 0.5),
            key_cancellation=bool(rng.random() < 0.6),
            church_rests=bool(rng.random() < 0.5),
            margin_top=float(rng.uniform(0.02, 0.3)),
            margin_bottom=float(rng.uniform(0.02, 0.3)),
            margin_left=float(rng.uniform(0.0, 0.6)),
            margin_right=float(rng.uniform(0.0, 0.6)),
        )

    def layout(self) -> str:
        """The ``\\layout`` block of one score."""
        return "\n".join([
            "\\layout {",
            f"  #(layout-set-staff-size {self.staff_size:.2f})",
            "  \\context { \\Score",
            f"    \\override SpacingSpanner.spacing-increment = #{self.spacing_increment:.3f}",
            f"    \\override SpacingSpanner.shortest-duration-space = #{self.shortest_duration_space:.3f}",
            "  }",
            "  \\context { \\Staff",
            f"    \\override StaffSymbol.thickness = #{self.staff_line_thickness:.3f}",
            f"    \\override LedgerLineSpanner.length-fraction = #{self.ledger_length:.3f}",
            f"    \\override BarLine.hair-thickness = #{self.bar_thickness:.3f}",
            f"    \\override MultiMeasureRest.expand-limit = #{10 if self.church_rests else 1}",
            f"    printKeyCancellation = ##{'t' if self.key_cancellation else 'f'}",
            "  }",
            "  \\context { \\Voice",
            f"    \\override Stem.thickness = #{self.stem_thickness:.3f}",
            f"    \\override Beam.beam-thickness = #{self.beam_thickness:.3f}",
            f"    autoBeaming = ##{'t' if self.auto_beam else 'f'}",
            "  }",
            "}",
        ])


# ------------------------------------------------------------------------------ tokens -> LilyPond
def _moment(quarters: Fraction) -> str:
    """A length in quarter notes as a LilyPond moment: ``3/8`` (whole notes)."""
    w = quarters / 4
    return f"{w.numerator}/{w.denominator}"


def _pitch(pitch: str) -> str:
    step, alter, octave = parse_pitch(pitch)
    marks = "'" * (octave - 3) if octave >= 3 else "," * (3 - octave)
    return f"{step.lower()}{_ALTER[alter]}{marks}"


def _key(value: str) -> str:
    """``keySignature`` value -> ``\\key fis \\major``."""
    tonic = value[:-1]
    alter = {"#": 1, "b": -1}.get(tonic[1:], 0)
    return f"\\key {tonic[0].lower()}{_ALTER[alter]} \\major"


def _time(value: str) -> str:
    n, d, symbol = time_signature_parts(value)
    style = "C" if symbol else "numbered"
    return f"\\once \\override Staff.TimeSignature.style = #'{style} \\time {n}/{d}"


def _bar_length(value: str) -> Fraction:
    n, d, _ = time_signature_parts(value)
    return Fraction(4 * n, d)


def _segments(symbols: Sequence[Symbol]) -> list[tuple[list[Symbol], str]]:
    """Symbols cut into LilyPond measures: (symbols, how it ends: ``bar`` | ``split`` | ``end``).

    A measure ends at every ``barline`` (not included) and, invisibly, before a time signature
    that comes after notes of the same bar.
    """
    segments: list[tuple[list[Symbol], str]] = []
    current: list[Symbol] = []
    for sym in symbols:
        if sym.kind == "barline":
            segments.append((current, "bar"))
            current = []
        elif sym.kind == "timeSignature" and any(s.kind in ("note", "rest", "multirest") for s in current):
            segments.append((current, "split"))
            current = [sym]
        else:
            current.append(sym)
    segments.append((current, "end"))
    return segments


class _LilyWriter:
    """The music of one staff, written symbol by symbol (see ``lilypond_music``)."""

    def __init__(self, options: LilyOptions) -> None:
        self.opts = options
        self.items: list[str] = []
        self.key_alter = key_alterations(0)
        self.measure_alter: dict[tuple[str, int], int] = {}  # accidentals shown in the open bar
        self.bar = Fraction(4)  # length of a full bar (quarter notes) under the time signature in force
        self.tie_open = False
        self.last_main: int | None = None  # index in ``items`` of the last note or rest
        self.graces: list[str] = []  # grace notes waiting for their main note
        self.started = False  # a note, rest or multirest has been written

    def note(self, sym: Symbol) -> str:
        """A note or grace note with the accidental the bar needs (``!`` forces it)."""
        step, alter, octave = parse_pitch(sym.pitch)
        expected = self.measure_alter.get((step, octave), self.key_alter[step])
        shown = not self.tie_open and alter != expected
        self.measure_alter[(step, octave)] = alter
        self.tie_open = False
        text = _pitch(sym.pitch) + ("!" if shown else "") + _DURATION[sym.duration] + "." * sym.dots
        return text + ("\\fermata" if sym.fermata else "")

    def flush_graces(self) -> None:
        """Grace notes with no main note after them in the bar: sung after the previous one."""
        if not self.graces:
            return
        if self.last_main is None:
            raise UnsupportedMusic("grace notes with no note or rest beside them in the bar")
        self.items[self.last_main] = f"\\afterGrace 15/16 {self.items[self.last_main]} {{ {' '.join(self.graces)} }}"
        self.graces = []

    def main(self, text: str) -> None:
        if self.graces:
            grace = "\\slashedGrace" if self.opts.slashed_grace else "\\grace"
            self.items.append(f"{grace} {{ {' '.join(self.graces)} }}")
            self.graces = []
        self.last_main = len(self.items)
        self.items.append(text)

    def segment(self, symbols: Sequence[Symbol], end: str) -> None:
        length = Fraction(0)
        bar = self.bar
        for sym in symbols:  # the bar's length, with the time signature it may start with
            if sym.kind == "timeSignature":
                bar = _bar_length(sym.value)
            elif sym.kind == "multirest":
                length += bar * int(sym.value)
            else:
                length += sym.quarter_length
        if length == 0 and end == "bar":
            raise UnsupportedMusic("a barline closes a bar with no duration (LilyPond would draw one barline for two)")
        timing_set = False
        self.last_main = None
        for sym in symbols:
            if sym.kind in ("note", "rest", "multirest") and not timing_set:
                timing_set = True
                if sym.kind == "multirest":  # as many measures of a full bar
                    measure = self.bar
                elif not self.started and length < self.bar and end == "bar":
                    self.items.append(f"\\partial 1*{_moment(length)}")
                    measure = None
                else:
                    measure = length
                if measure is not None:
                    self.items.append(f"\\set Timing.measureLength = #(ly:make-moment {_moment(measure)})")
                self.started = True
            if sym.kind == "clef":
                self.items.append(f"\\set Staff.forceClef = ##t \\clef \"{LILYPOND_CLEFS[sym.value]}\"")
            elif sym.kind == "keySignature":
                self.key_alter = key_alterations(KEY_SHARPS[sym.value])
                self.measure_alter.clear()
                self.items.append(_key(sym.value))
            elif sym.kind == "timeSignature":
                self.bar = _bar_length(sym.value)
                self.measure_alter.clear()
                self.items.append(_time(sym.value))
            elif sym.kind == "gracenote":
                self.graces.append(self.note(sym))
            elif sym.kind == "note":
                self.main(self.note(sym))
            elif sym.kind == "rest":
                self.main("r" + _DURATION[sym.duration] + "." * sym.dots + ("\\fermata" if sym.fermata else ""))
            elif sym.kind == "multirest":
                self.main(f"R1*{_moment(self.bar * int(sym.value))}")
            elif sym.kind == "tie":
                if self.last_main is None:
                    raise UnsupportedMusic("a tie from a note of an earlier bar (ties are written on the note)")
                self.items[self.last_main] += "~"
                self.tie_open = True
        self.flush_graces()
        if end == "bar":
            self.items.append('\\bar "|"')
            self.measure_alter.clear()
        elif length > 0:
            self.items.append('\\bar ""')


def lilypond_music(tokens: str | Sequence[str], options: LilyOptions | None = None) -> str:
    """A valid semantic sequence -> the LilyPond music of its staff (absolute pitches).

    ``InvalidSequence`` for an invalid sequence, ``UnsupportedMusic`` for one LilyPond cannot
    draw symbol for symbol (a barline closing a bar with no duration, grace notes alone in a bar).
    """
    symbols = parse_semantic(tokens)
    writer = _LilyWriter(options or LilyOptions())
    # LilyPond draws a treble clef and a 4/4 time at the start unless the sequence sets them
    first = next((i for i, s in enumerate(symbols) if s.kind not in ("clef", "keySignature", "timeSignature")), len(symbols))
    kinds = {s.kind for s in symbols[:first]}
    if "clef" not in kinds:
        writer.items.append("\\once \\omit Staff.Clef")
    if "timeSignature" not in kinds:
        writer.items.append("\\once \\omit Staff.TimeSignature")
    for part, end in _segments(symbols):
        writer.segment(part, end)
    return " ".join(writer.items)


def lilypond_score(tokens: str | Sequence[str], options: LilyOptions | None = None) -> str:
    """A ``\\score`` block of one staff with its own layout (see ``lilypond_music``)."""
    options = options or LilyOptions()
    return f"\\score {{\n  \\new Staff {{ {lilypond_music(tokens, options)} }}\n{options.layout()}\n}}"


# ------------------------------------------------------------------------------ agreement
def expected_symbols(tokens: str | Sequence[str]) -> tuple[list[str], dict[str, int]]:
    """What a staff must draw: the classes of ``_ORDERED`` left to right, and how many ties,
    fermatas and multirest numbers (a multirest of one bar is a whole rest with no number)."""
    order: list[str] = []
    counts = {"tie": 0, "fermata": 0, "mmnumber": 0}
    for tok in split_tokens(tokens):
        kind, _, value = tok.partition("-")
        if kind in ("note", "gracenote"):
            order.append("note")
        elif kind in ("rest", "multirest", "barline", "clef"):
            order.append(kind)
            counts["mmnumber"] += kind == "multirest" and int(value) > 1
        elif kind == "keySignature":
            if KEY_SHARPS[value]:
                order.append("key")
        elif kind == "timeSignature":
            order.append("time")
        elif kind == "tie":
            counts["tie"] += 1
        counts["fermata"] += tok.endswith("_fermata")
    return order, counts


def check_agreement(tokens: str | Sequence[str], drawn: Sequence[tuple[str, float]], systems: int = 1) -> list[str]:
    """Differences between the label and what LilyPond drew (``[]``: they agree).

    ``drawn``: (class of ``GROB_CLASSES``, left x) of every drawn grob, in any order.
    """
    order, counts = expected_symbols(tokens)
    drawn_order = [c for c, _ in sorted((d for d in drawn if d[0] in _ORDERED), key=lambda d: d[1])]
    problems = [f"{systems} systems drawn, expected 1"] if systems != 1 else []
    if drawn_order != order:
        problems.append(f"drawn left to right: {' '.join(drawn_order)}; label: {' '.join(order)}")
    for cls, expected in counts.items():
        n = sum(c == cls for c, _ in drawn)
        if n != expected:
            problems.append(f"{n} {cls} drawn, label has {expected}")
    return problems


def parse_report(stdout: str) -> dict[str, tuple[int, list[tuple[str, float]]]]:
    """``REPORT_SCHEME``'s lines -> staff id -> (systems, [(class, left x), ...])."""
    out: dict[str, tuple[int, list[tuple[str, float]]]] = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "@system":
            systems, drawn = out.get(parts[1], (0, []))
            out[parts[1]] = (systems + 1, drawn)
        elif len(parts) == 4 and parts[0] == "@grob" and parts[2] in GROB_CLASSES:
            try:
                x = float(parts[3])
            except ValueError:  # Guile's +inf.0 for an empty extent
                continue
            out.setdefault(parts[1], (0, []))[1].append((GROB_CLASSES[parts[2]], x))
    return out


# ------------------------------------------------------------------------------ images
def resolution(height: int, options: LilyOptions) -> int:
    """PNG resolution (dpi) giving a staff space of a quarter of ``height`` pixels, about twice
    what it gets in the final image."""
    return max(30, round(72 * height / options.staff_size))  # staff space: staff_size / 4 pt


def finish_image(img: np.ndarray, height: int, options: LilyOptions) -> np.ndarray:
    """LilyPond's gray PNG (H', W') -> uint8 (height, W) on white: cropped to the ink, given
    the option's margins, resized."""
    ink = img < 250
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if rows.size == 0:
        raise ValueError("the engraving is blank")
    img = img[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    ch = img.shape[0]
    top, bottom, left, right = (round(m * ch) for m in (options.margin_top, options.margin_bottom, options.margin_left,
                                                         options.margin_right))
    img = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=255)
    width = max(1, round(img.shape[1] * height / img.shape[0]))
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)  # (height, width)


@dataclass(frozen=True)
class Engraved:
    """One staff of ``engrave_batch``: its image, or why there is none."""

    image: np.ndarray | None
    problems: tuple[str, ...] = ()  # a failed render or a disagreement with the label
    disagrees: bool = False  # drawn, but not what the label says


def lilypond_path() -> str:
    path = shutil.which("lilypond")
    if path is None:
        raise LilyPondMissing("lilypond is not on PATH (Debian: apt-get install lilypond)")
    return path


@dataclass
class _Book:
    """One staff's LilyPond output."""

    png: np.ndarray | None = None
    systems: int = 0
    drawn: list[tuple[str, float]] | None = None
    warnings: list[str] | None = None


def _run_lilypond(scores: Sequence[str], resolutions: Sequence[int], folder: Path, timeout: float) -> list[_Book]:
    """Engrave ``scores`` as the books of one file in one ``lilypond`` process."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = HEADER.count("\n")
    parts, spans = [HEADER], []
    for i, (score, dpi) in enumerate(zip(scores, resolutions)):
        text = (f'\\book {{ \\bookOutputSuffix "{i:05d}" \\paper {{ staff-id = "{i:05d}" staff-resolution = {dpi} }}\n'
                f"{score}\n}}\n")
        spans.append((lines + 1, lines + text.count("\n")))
        lines += text.count("\n")
        parts.append(text)
    source = folder / "staves.ly"
    source.write_text("".join(parts), encoding="utf-8")
    cmd = [lilypond_path(), "--png", "-dpixmap-format=pnggray", "-dcrop", "-dno-print-pages", "-dno-point-and-click",
           "--loglevel=WARN", "-o", str(folder / "staff"), str(source)]
    done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=timeout)
    books = [_Book(warnings=[]) for _ in scores]
    for m in re.finditer(r"staves\.ly:(\d+):\d+: (.*)$", done.stderr, re.M):
        line = int(m.group(1))
        for book, (a, b) in zip(books, spans):
            if a <= line <= b and book.warnings is not None:
                book.warnings.append(m.group(2))
    report = parse_report(done.stdout)
    for i, book in enumerate(books):
        book.systems, book.drawn = report.get(f"{i:05d}", (0, None))
        path = folder / f"staff-{i:05d}.cropped.png"
        if path.exists():
            book.png = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)  # (H', W') uint8
    return books


def _engrave_scores(scores: Sequence[str], resolutions: Sequence[int], folder: Path) -> list[_Book]:
    """``_run_lilypond``, halving the batch when the process dies or hangs with no output."""
    try:
        books = _run_lilypond(scores, resolutions, folder, timeout=30 + 2 * len(scores))
    except subprocess.TimeoutExpired:
        books = [_Book(warnings=["lilypond timed out"]) for _ in scores]
    if len(scores) > 1 and all(b.png is None for b in books):
        half = len(scores) // 2
        return (_engrave_scores(scores[:half], resolutions[:half], folder / "a")
                + _engrave_scores(scores[half:], resolutions[half:], folder / "b"))
    return books


def engrave_batch(sequences: Sequence[str | Sequence[str]], options: Sequence[LilyOptions], height: int) -> list[Engraved]:
    """Engrave many staves with one ``lilypond`` process; one ``Engraved`` per sequence.

    ``LilyPondMissing`` when ``lilypond`` is not installed; an invalid or undrawable sequence,
    a failed render or a disagreement with the label gives an ``Engraved`` with no image.
    """
    if len(sequences) != len(options):
        raise ValueError(f"{len(sequences)} sequences but {len(options)} options")
    lilypond_path()
    results: list[Engraved] = [Engraved(None, ("not engraved",))] * len(sequences)
    scores, which = [], []
    for i, (tokens, opts) in enumerate(zip(sequences, options)):
        try:
            scores.append(lilypond_score(tokens, opts))
            which.append(i)
        except (InvalidSequence, UnsupportedMusic) as e:
            results[i] = Engraved(None, (str(e),))
    if not scores:
        return results
    with tempfile.TemporaryDirectory(prefix="lilypond-") as tmp:
        books = _engrave_scores(scores, [resolution(height, options[i]) for i in which], Path(tmp))
    for i, book in zip(which, books):
        warned = tuple(f"lilypond: {w}" for w in book.warnings or ())
        if book.png is None or book.drawn is None:
            results[i] = Engraved(None, warned or ("lilypond wrote no image",))
            continue
        problems = check_agreement(sequences[i], book.drawn, book.systems) + list(warned)
        if problems:
            results[i] = Engraved(None, tuple(problems), disagrees=True)
            continue
        try:
            results[i] = Engraved(finish_image(book.png, height, options[i]))
        except ValueError as e:
            results[i] = Engraved(None, (str(e),))
    return results


def engrave_many(sequences: Sequence[str | Sequence[str]], options: Sequence[LilyOptions], height: int) -> list[np.ndarray | None]:
    """uint8 gray (height, W) staff images on white, ``None`` where a staff failed
    (see ``engrave_batch`` for why); one ``lilypond`` process for all of them."""
    return [r.image for r in engrave_batch(sequences, options, height)]


__all__ = ["GROB_CLASSES", "HEADER", "LILYPOND_CLEFS", "Engraved", "LilyOptions", "LilyPondMissing", "check_agreement",
           "engrave_batch", "engrave_many", "expected_symbols", "finish_image", "lilypond_music", "lilypond_path",
           "lilypond_score", "parse_report", "resolution"]
