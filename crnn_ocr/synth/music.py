"""Engrave single-staff incipits offline (Verovio + cairosvg) into standard-layout LMDBs.

    python datasets/synth_music.py --out data/music --count 12000 --seed 0 [--processes 1]
        [--corpus-ratio 0.7] [--val-fraction 0.1] [--height 96] [--distort 0.7]

Writes ``OUT/train`` and ``OUT/val`` (LMDBs whose labels are PrIMuS semantic token sequences,
split by tune: every excerpt of a tune lands on the same side), ``OUT/vocabulary.txt`` (one
token a line, for ``tools/train.py --alphabet``) and ``OUT/stats.json``.

Music comes from two sources:

* real melodies: the folk tunes in ABC that music21's wheel ships (Essen Folksong Collection,
  O'Neill's 1850 collection, Ryan's Mammoth Collection, Aird's Airs, ...). Each tune is parsed
  once by music21 and cut into excerpts of a few measures (``crnn_ocr.music.measure_tokens``:
  slurs, lyrics, ornaments, dynamics, text and repeats are dropped; measures with chords,
  tuplets or voices are never used). An excerpt is sometimes moved to another clef by whole
  octaves so that it sits on the staff;
* random melodies (clef, key, metre, rhythm, pitch walk, rests, ties, dots, grace notes,
  fermatas, multirests) for coverage of what folk tunes rarely hold.

The label is the token sequence; the engraving is ``semantic_to_mei`` of that same sequence
rendered by Verovio, so image and label agree by construction, and every sample is also
checked: the notes, rests, multirests and visible barlines counted in Verovio's SVG must match
the label, and the music must fit on one system (mismatches are dropped and counted).
Engraving varies (Verovio font, spacing, line widths, margins, beaming, grace style) and a
Camera-PrIMuS-like distortion (rotation, perspective, wave, blur, lighting, paper tone,
noise, JPEG) is applied to a ``--distort`` fraction of the images. Output depends only on the
seed and package versions: sample ``i`` is drawn from ``default_rng([seed, i])``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from crnn_ocr.music import (
    DURATIONS,
    KEY_SHARPS,
    SHARPS_KEY,
    STEPS,
    MeiOptions,
    UnsupportedMusic,
    count_symbols,
    diatonic_index,
    excerpt_tokens,
    format_pitch,
    key_alterations,
    measure_tokens,
    parse_pitch,
    parse_token,
    primus_vocabulary,
    semantic_to_mei,
    time_signature_parts,
)

CORPUS_COLLECTIONS = ("essenFolksong", "oneills1850", "ryansMammoth", "airdsAirs", "miscFolk", "nottingham-dataset",
                      "palestrina", "bach", "monteverdi")
# collections of whole pieces (one file each, several parts): the file pattern music21 parses;
# the others are ABC files of many tunes
PIECE_COLLECTIONS = {"palestrina": "*.krn", "bach": "*.mxl", "monteverdi": "*.mxl"}
VEROVIO_FONTS = ("Leipzig", "Bravura", "Gootville", "Leland", "Petaluma")
# diatonic index (octave * 7 + step) of each clef's bottom staff line
CLEF_BOTTOM_LINE = {"G1": 32, "G2": 30, "F3": 20, "F4": 18, "F5": 16, "C1": 28, "C2": 26, "C3": 24, "C4": 22, "C5": 20}
CLEF_WEIGHTS = {"G2": 0.45, "F4": 0.2, "C1": 0.06, "C3": 0.08, "C4": 0.08, "G1": 0.03, "F3": 0.03, "F5": 0.02,
                "C2": 0.03, "C5": 0.02}
TIME_WEIGHTS = {"4/4": 0.16, "3/4": 0.16, "2/4": 0.14, "6/8": 0.1, "C": 0.1, "C/": 0.06, "3/8": 0.05, "2/2": 0.05,
                "3/2": 0.05, "12/8": 0.03, "9/8": 0.03, "6/4": 0.03, "5/4": 0.02, "4/2": 0.02}
_SVG_GROUP = re.compile(r'<g\b[^>]*\bclass="(note|rest|multiRest|barLine|system)(?:\s[^"]*)?"[^>]*?(/?)>')


# ------------------------------------------------------------------------------ configuration
@dataclass
class SynthMusicConfig:
    """What ``generate`` writes; see the module docstring."""

    out: str
    count: int = 1000
    seed: int = 0
    corpus_ratio: float = 0.7  # share of excerpts from real tunes (the rest random melodies)
    val_fraction: float = 0.1  # share of tunes (and random melodies) held out into OUT/val
    excerpts_per_tune: int = 3  # excerpts cut from one parsed tune (music21 parsing is the slow part)
    min_measures: int = 1
    max_measures: int = 6
    max_tokens: int = 56
    vocabulary: str | None = None  # token file every label must stay inside (None: PrIMuS's semantic vocabulary)
    height: int = 96  # stored image height (pixels)
    distort: float = 0.7  # fraction of images with camera-like distortion
    image_format: str = "png"
    collections: tuple[str, ...] = CORPUS_COLLECTIONS
    fonts: tuple[str, ...] = VEROVIO_FONTS
    processes: int = 1
    lilypond: float = 0.0  # share of staves engraved by LilyPond (crnn_ocr.synth.lilypond) instead of Verovio
    splits: tuple[str, ...] = ("train", "val")  # the sides engraved (a sample of another side is drawn, not engraved)
    overwrite: bool = False


@dataclass
class GenerationStats:
    written: dict[str, int] = field(default_factory=lambda: {"train": 0, "val": 0})
    corpus: int = 0
    random: int = 0
    lilypond: int = 0  # of the written, engraved by LilyPond
    unsupported_excerpts: int = 0  # corpus excerpts falling on chords, tuplets, ...
    outside_vocabulary: int = 0  # corpus excerpts with a token the vocabulary lacks
    unparsable_tunes: int = 0
    render_failures: int = 0
    agreement_failures: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        total = sum(self.written.values())
        rate = total / self.seconds if self.seconds else 0.0
        return (f"wrote {total} images ({self.written['train']} train, {self.written['val']} val; "
                f"{self.corpus} from tunes, {self.random} random; {self.lilypond} by LilyPond) in {self.seconds:.1f} s ({rate:.1f} images/s); "
                f"dropped: {self.agreement_failures} disagreeing with the engraving, {self.render_failures} not rendered, "
                f"{self.unsupported_excerpts} unsupported excerpts, {self.outside_vocabulary} outside the vocabulary, "
                f"{self.unparsable_tunes} unparsable tunes")


# ------------------------------------------------------------------------------ vocabulary
def load_vocabulary(path: str | None) -> tuple[str, ...]:
    """The tokens labels must stay inside: a token file (one a line), or PrIMuS's semantic
    vocabulary (``None``). Every token must be valid in the semantic grammar."""
    if path is None:
        return primus_vocabulary()
    try:
        tokens = tuple(line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip())
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read the vocabulary (--vocabulary): {e}") from None
    if not tokens:
        raise ValueError(f"{path}: the vocabulary is empty (--vocabulary)")
    for t in tokens:
        try:
            parse_token(t)
        except ValueError as e:
            raise ValueError(f"{path}: {t!r} is not a semantic token ({e})") from None
    return tokens


# ------------------------------------------------------------------------------ corpus
@dataclass(frozen=True)
class Tune:
    """One tune or piece of the music21 corpus: an ABC tune (``tune_id`` is
    ``collection/file.abc#X``, ``abc`` its text) or a whole piece of several parts (``tune_id``
    is its file ``collection/file.krn``, ``path`` the file). Excerpts of a piece come from any
    of its parts, and the split keeps every part of a piece on one side."""

    tune_id: str
    abc: str = ""
    path: str | None = None


def corpus_root() -> Path:
    import music21

    return Path(music21.__file__).parent / "corpus"


def load_corpus_tunes(collections: Sequence[str] = CORPUS_COLLECTIONS) -> list[Tune]:
    """Every ABC tune (split at ``X:`` headers) of the given music21 corpus collections.

    The Essen ``test*.abc`` files repeat tunes of the other files and are left out.
    """
    root = corpus_root()
    tunes: list[Tune] = []
    for name in collections:
        folder = root / name
        if not folder.is_dir():
            raise ValueError(f"music21 corpus has no collection {name!r} (at {folder})")
        if name in PIECE_COLLECTIONS:
            tunes += [Tune(p.relative_to(root).as_posix(), path=str(p))
                      for p in sorted(folder.rglob(PIECE_COLLECTIONS[name]))]
            continue
        for path in sorted(folder.rglob("*.abc")):
            if name == "essenFolksong" and path.name.startswith("test"):
                continue
            text = path.read_text(encoding="latin-1")
            rel = path.relative_to(root).as_posix()
            for m in re.finditer(r"^X:\s*(\d+).*?(?=^X:|\Z)", text, re.M | re.S):
                tunes.append(Tune(f"{rel}#{m.group(1)}", m.group(0)))
    return tunes


def is_val(item_id: str, val_fraction: float) -> bool:
    """Stable split by tune id: the same tune always lands on the same side."""
    return zlib.crc32(item_id.encode()) % 10000 < val_fraction * 10000


@contextlib.contextmanager
def _no_music21_beaming() -> Iterator[None]:
    """Skip music21's automatic beaming while parsing ABC: two thirds of the parse time, and
    beams are not part of the encoding (``semantic_to_mei`` beams by metre itself)."""
    from music21 import stream

    saved = stream.Stream.makeBeams
    stream.Stream.makeBeams = lambda self, *a, **k: None if k.get("inPlace") else self  # type: ignore[method-assign]
    try:
        yield
    finally:
        stream.Stream.makeBeams = saved  # type: ignore[method-assign]


def parse_tune(tune: Tune) -> list[list]:
    """music21 parse of one tune or piece -> the ``MeasureTokens`` of each of its parts (one for
    an ABC tune); ``UnsupportedMusic`` if unusable."""
    import music21
    from music21 import stream

    try:
        with _no_music21_beaming():
            parsed = (music21.converter.parse(tune.path) if tune.path is not None
                      else music21.converter.parse(tune.abc, format="abc"))
    except Exception as e:  # music21 raises many types on odd files
        raise UnsupportedMusic(f"{tune.tune_id}: music21 cannot parse it ({type(e).__name__})") from None
    if tune.path is None or not isinstance(parsed, stream.Score) or not parsed.parts:
        return [measure_tokens(parsed)]
    parts = []
    for part in parsed.parts:
        try:
            parts.append(measure_tokens(part))
        except UnsupportedMusic:
            continue
    if not parts:
        raise UnsupportedMusic(f"{tune.tune_id}: no part can be encoded")
    return parts


def choose_excerpt(measures: Sequence, rng: np.random.Generator, cfg: SynthMusicConfig) -> list[str] | None:
    """Tokens of a run of supported measures (an incipit half the time), or None."""
    ok = [m.tokens is not None and len(m.tokens) > 0 for m in measures]
    starts = [i for i in range(len(measures)) if ok[i]]
    if not starts:
        return None
    first = 0 if ok[0] and rng.random() < 0.5 else int(rng.choice(starts))
    count = int(rng.integers(cfg.min_measures, cfg.max_measures + 1))
    n = 0
    while first + n < len(measures) and n < count and ok[first + n]:
        n += 1
    tokens = excerpt_tokens(measures, first, n)
    while n > 1 and len(tokens) > cfg.max_tokens:
        n -= 1
        tokens = excerpt_tokens(measures, first, n)
    if len(tokens) > cfg.max_tokens or not any(t.startswith(("note-", "rest-")) for t in tokens):
        return None
    if not any(t.startswith("clef-") for t in tokens):
        tokens.insert(0, "clef-G2")  # ABC without a clef is treble
    return tokens


def move_to_clef(tokens: list[str], clef: str) -> list[str]:
    """Replace the clefs by ``clef`` and move notes by whole octaves to sit around its middle line."""
    pitches = [t.split("-", 1)[1].split("_", 1)[0] for t in tokens if t.startswith(("note-", "gracenote-"))]
    if not pitches:
        return [f"clef-{clef}" if t.startswith("clef-") else t for t in tokens]
    median = float(np.median([diatonic_index(p) for p in pitches]))
    shift = int(round((CLEF_BOTTOM_LINE[clef] + 4 - median) / 7))
    out = []
    for t in tokens:
        if t.startswith("clef-"):
            t = f"clef-{clef}"
        elif t.startswith(("note-", "gracenote-")):
            kind, body = t.split("-", 1)
            pitch, rest = body.split("_", 1)
            step, alter, octave = parse_pitch(pitch)
            t = f"{kind}-{format_pitch(step, alter, min(9, max(0, octave + shift)))}_{rest}"
        out.append(t)
    return out


def move_to_key(tokens: Sequence[str], sharps: int) -> list[str]:
    """Replace the key signatures by the key of ``sharps`` sharps (negative: flats), the notes on
    their lines and spaces: a note that took its alteration from the key (or from an earlier note
    on its line or space in the bar) takes the new key's (or that note's new one); a note with
    an accidental of its own keeps its alteration. Rhythm, clefs and staff positions stay."""
    old_key: dict[str, int] = {}
    new_key = key_alterations(sharps)
    old_bar: dict[tuple[str, int], int] = {}
    new_bar: dict[tuple[str, int], int] = {}
    out = []
    for t in tokens:
        if t.startswith("keySignature-"):
            old_key = key_alterations(KEY_SHARPS[t.split("-", 1)[1]])
            t = f"keySignature-{SHARPS_KEY[sharps]}"
        elif t == "barline":
            old_bar, new_bar = {}, {}
        elif t.startswith(("note-", "gracenote-")):
            kind, body = t.split("-", 1)
            pitch, rest = body.split("_", 1)
            step, alter, octave = parse_pitch(pitch)
            place = (step, octave)
            implied = old_bar.get(place, old_key.get(step, 0))
            new_alter = new_bar.get(place, new_key[step]) if alter == implied else alter
            old_bar[place], new_bar[place] = alter, new_alter
            t = f"{kind}-{format_pitch(step, new_alter, octave)}_{rest}"
        out.append(t)
    return out


def add_accidentals(tokens: Sequence[str], rng: np.random.Generator, rate: float,
                    vocabulary: frozenset[str] | Any | None = None) -> list[str]:
    """Alter about ``rate`` of the notes: each note (not one tied to its neighbour) is drawn with
    probability ``rate`` and its alteration replaced by another of flat, natural and sharp, so the
    engraving shows a sharp, flat or natural where the key and bar implied none (or a different
    one), and later notes on that line or space in the bar follow the engraver's bar rules. The
    label stays the sounding pitches. A new token outside ``vocabulary`` (anything with ``in``)
    leaves the note as it was; the draws do not depend on it, so a seed gives the same choices."""
    out = []
    for j, t in enumerate(tokens):
        if t.startswith(("note-", "gracenote-")):
            draw, pick = rng.random(), rng.random()
            tied = (j + 1 < len(tokens) and tokens[j + 1] == "tie") or (j > 0 and tokens[j - 1] == "tie")
            if draw < rate and not tied:
                kind, body = t.split("-", 1)
                pitch, rest = body.split("_", 1)
                step, alter, octave = parse_pitch(pitch)
                choices = [a for a in (-1, 0, 1) if a != alter]
                new = f"{kind}-{format_pitch(step, choices[int(pick * len(choices))], octave)}_{rest}"
                if vocabulary is None or new in vocabulary:
                    t = new
        out.append(t)
    return out


# ------------------------------------------------------------------------------ random melodies
_RHYTHM = [  # (duration, dots, weight)
    ("quarter", 0, 0.26), ("eighth", 0, 0.24), ("half", 0, 0.1), ("sixteenth", 0, 0.1), ("quarter", 1, 0.07),
    ("eighth", 1, 0.05), ("half", 1, 0.04), ("whole", 0, 0.04), ("thirty_second", 0, 0.02), ("quarter", 2, 0.01),
    ("sixteenth", 1, 0.01), ("whole", 1, 0.01), ("double_whole", 0, 0.005), ("sixty_fourth", 0, 0.005),
]


def _length(duration: str, dots: int) -> Fraction:
    return DURATIONS[duration][1] * (2 - Fraction(1, 2**dots))


def _pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = list(weights)
    p = np.array([weights[n] for n in names], dtype=float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def random_melody(rng: np.random.Generator, cfg: SynthMusicConfig,
                  vocabulary: frozenset[str] | None = None) -> list[str]:
    """A random monophonic incipit: clef, key, metre, then full measures (maybe a pickup).

    With a ``vocabulary`` every token stays inside it: a note whose pitch and duration the
    vocabulary lacks is drawn again (another step of the walk, then without its fermata or tie,
    then a rest), and a melody that still holds an outside token is drawn anew (``ValueError``
    after 50 draws: the vocabulary cannot express the generator's music).
    """
    for _ in range(50):
        tokens = _random_melody_once(rng, cfg, vocabulary)
        if vocabulary is None or all(t in vocabulary for t in tokens):
            return tokens
    outside = sorted({t for t in tokens if t not in vocabulary})
    raise ValueError(f"random melodies keep drawing tokens outside the vocabulary (e.g. {outside[0]!r})")


def _random_melody_once(rng: np.random.Generator, cfg: SynthMusicConfig, vocab: frozenset[str] | None) -> list[str]:
    def ok(token: str) -> bool:
        return vocab is None or token in vocab

    clef = _pick(rng, CLEF_WEIGHTS)
    sharps = int(rng.integers(-6, 8))
    time_value = _pick(rng, TIME_WEIGHTS)
    n, d, _ = time_signature_parts(time_value)
    bar = Fraction(4 * n, d)
    key_alter = key_alterations(sharps)
    tokens = [f"clef-{clef}", f"keySignature-{SHARPS_KEY[sharps]}", f"timeSignature-{time_value}"]
    bottom = CLEF_BOTTOM_LINE[clef]
    low, high = bottom - 4, bottom + 12  # two ledger lines below to two above
    pos = int(rng.integers(bottom + 1, bottom + 8))
    measures = int(rng.integers(cfg.min_measures, cfg.max_measures + 1))
    pickup = rng.random() < 0.15
    if rng.random() < 0.07:
        pickup = False  # an upbeat after bars of rest would not be one
        tokens += [f"multirest-{int(rng.choice([2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 23, 24, 32, 40]))}", "barline"]
    last_pitch: str | None = None
    tie_pending = False  # the last note is tied to the next one, which must repeat its pitch
    for m in range(measures):
        left = bar * Fraction(int(rng.integers(1, 4)), 4) if m == 0 and pickup else bar
        accidentals: dict[int, int] = {}
        while left > 0:
            choices = [(du, do, w) for du, do, w in _RHYTHM if _length(du, do) <= left]
            if not choices:  # e.g. 1/32 left in an odd pickup: fill with the shortest value
                du, do = "hundred_twenty_eighth", 0
            else:
                w = np.array([c[2] for c in choices])
                du, do, _ = choices[int(rng.choice(len(choices), p=w / w.sum()))]
            left -= _length(du, do)
            fermata = "_fermata" if rng.random() < 0.02 else ""
            value = f"{du}{'.' * do}"
            rest = next((r for r in (f"rest-{value}{fermata}", f"rest-{value}") if ok(r)), None)
            if not tie_pending and rng.random() < 0.12 and rest is not None:
                tokens.append(rest)
                continue
            if tie_pending and last_pitch is not None and not ok(f"note-{last_pitch}_{value}"):
                del tokens[len(tokens) - 1 - tokens[::-1].index("tie")]  # the tied-to pitch cannot take this value
                tie_pending = False
            note = None
            if tie_pending and last_pitch is not None:
                pitch = last_pitch
                accidentals[diatonic_index(pitch)] = parse_pitch(pitch)[1]
                note = next(n for n in (f"note-{pitch}_{value}{fermata}", f"note-{pitch}_{value}") if ok(n))
            else:
                for _attempt in range(6):
                    r = rng.random()
                    step = int(rng.integers(-1, 2)) if r < 0.55 else int(rng.integers(-2, 3)) if r < 0.85 else int(rng.integers(-7, 8))
                    pos = min(high, max(low, pos + step))
                    name = STEPS[pos % 7]
                    alter = accidentals.get(pos, key_alter[name])
                    if rng.random() < 0.06:
                        alter = int(rng.choice([a for a in (-1, 0, 1) if a != alter]))
                        accidentals[pos] = alter
                    pitch = format_pitch(name, alter, pos // 7)
                    note = next((n for n in (f"note-{pitch}_{value}{fermata}", f"note-{pitch}_{value}") if ok(n)), None)
                    if note is not None:
                        break
                if note is None:  # this value on these pitches is outside the vocabulary
                    tokens.append(rest if rest is not None else f"rest-{value}")
                    tie_pending = False
                    continue
                if rng.random() < 0.03:
                    g = min(high, pos + 1)
                    grace = (f"gracenote-{format_pitch(STEPS[g % 7], key_alter[STEPS[g % 7]], g // 7)}_"
                             f"{rng.choice(['eighth', 'sixteenth'])}")
                    if ok(grace):
                        tokens.append(grace)
            tokens.append(note)
            last_pitch = pitch
            tie_pending = rng.random() < 0.05
            if tie_pending:
                tokens.append("tie")
        tokens.append("barline")
    while len(tokens) > cfg.max_tokens and "barline" in tokens[3:-1]:
        cut = len(tokens) - 2 - tokens[-2::-1].index("barline")  # the last barline before the final one
        tokens = tokens[: cut + 1]
    if tokens[-2] == "tie":  # a tie into the cut-off part
        del tokens[-2]
    return tokens


# ------------------------------------------------------------------------------ engraving
@dataclass(frozen=True)
class Engraving:
    """Verovio options and MEI choices for one image."""

    font: str
    spacing_linear: float
    spacing_non_linear: float
    staff_line_width: float
    stem_width: float
    bar_line_width: float
    margin_top: int
    margin_bottom: int
    margin_left: int
    margin_right: int
    beams: bool
    grace: str
    unit: float = 9.0  # staff space in Verovio units: the staff's size against the margins
    beam_max_slope: int = 10
    grace_factor: float = 0.75
    ledger_line_thickness: float = 0.15
    ledger_line_extension: float = 0.54
    thick_barline: float = 1.0
    multirest_style: str = "auto"
    even_spacing: bool = False

    @classmethod
    def random(cls, rng: np.random.Generator, fonts: Sequence[str]) -> Engraving:
        return cls(
            font=str(rng.choice(list(fonts))),
            spacing_linear=float(rng.uniform(0.15, 0.4)),
            spacing_non_linear=float(rng.uniform(0.45, 0.75)),
            staff_line_width=float(rng.uniform(0.1, 0.3)),
            stem_width=float(rng.uniform(0.15, 0.35)),
            bar_line_width=float(rng.uniform(0.2, 0.5)),
            margin_top=int(rng.integers(0, 40)),
            margin_bottom=int(rng.integers(0, 40)),
            margin_left=int(rng.integers(0, 100)),
            margin_right=int(rng.integers(0, 100)),
            beams=bool(rng.random() < 0.85),
            grace=str(rng.choice(["acc", "unacc"])),
            unit=float(rng.uniform(6.5, 11.0)),
            beam_max_slope=int(rng.integers(0, 21)),
            grace_factor=float(rng.uniform(0.5, 0.9)),
            ledger_line_thickness=float(rng.uniform(0.1, 0.3)),
            ledger_line_extension=float(rng.uniform(0.3, 0.7)),
            thick_barline=float(rng.uniform(0.6, 1.2)),
            multirest_style=str(rng.choice(["auto", "default", "block"])),
            even_spacing=bool(rng.random() < 0.1),
        )

    def verovio_options(self) -> dict:
        return {
            "font": self.font, "breaks": "none", "pageWidth": 60000, "adjustPageWidth": True,
            "adjustPageHeight": True, "header": "none", "footer": "none", "scale": 40,
            "spacingLinear": self.spacing_linear, "spacingNonLinear": self.spacing_non_linear,
            "staffLineWidth": self.staff_line_width, "stemWidth": self.stem_width, "barLineWidth": self.bar_line_width,
            "pageMarginTop": self.margin_top, "pageMarginBottom": self.margin_bottom,
            "pageMarginLeft": self.margin_left, "pageMarginRight": self.margin_right,
            "unit": self.unit, "beamMaxSlope": self.beam_max_slope, "graceFactor": self.grace_factor,
            "ledgerLineThickness": self.ledger_line_thickness, "ledgerLineExtension": self.ledger_line_extension,
            "thickBarlineThickness": self.thick_barline, "multiRestStyle": self.multirest_style,
            "evenNoteSpacing": self.even_spacing,
        }


class Engraver:
    """Renders semantic sequences with one Verovio toolkit (one per process)."""

    def __init__(self) -> None:
        import verovio

        verovio.enableLog(verovio.LOG_OFF)
        self.toolkit = verovio.toolkit()

    def svg(self, tokens: Sequence[str], engraving: Engraving) -> str:
        """The engraving of ``tokens`` as SVG; ``ValueError`` if Verovio rejects the MEI."""
        mei = semantic_to_mei(tokens, MeiOptions(beams=engraving.beams, grace=engraving.grace))
        self.toolkit.setOptions(engraving.verovio_options())
        if not self.toolkit.loadData(mei):
            raise ValueError("verovio could not load the MEI")
        return self.toolkit.renderToSVG(1)


def svg_counts(svg: str) -> dict[str, int]:
    """Notes (grace notes included), rests, multirests, visible barlines and systems in a Verovio SVG."""
    counts = {"note": 0, "rest": 0, "multirest": 0, "barline": 0, "system": 0}
    names = {"note": "note", "rest": "rest", "multiRest": "multirest", "barLine": "barline", "system": "system"}
    for m in _SVG_GROUP.finditer(svg):
        if m.group(1) == "barLine" and m.group(2) == "/":
            continue  # an invisible barline (the open last measure) draws nothing
        counts[names[m.group(1)]] += 1
    return counts


def check_agreement(tokens: Sequence[str], svg: str) -> list[str]:
    """Differences between the label and its engraving (``[]``: they agree)."""
    drawn = svg_counts(svg)
    problems = [f"{drawn['system']} systems drawn, expected 1"] if drawn["system"] != 1 else []
    for kind, expected in count_symbols(tokens).items():
        if drawn[kind] != expected:
            problems.append(f"{drawn[kind]} {kind}s drawn, label has {expected}")
    return problems


_GLYPH_DEF = re.compile(r'<g id="([^"]+)"\s*>\s*(<path[^>]*/>)\s*</g>')
_GLYPH_USE = re.compile(r'<use xlink:href="#([^"]+)" transform="([^"]+)"\s*/>')


def inline_glyphs(svg: str) -> str:
    """Replace Verovio's ``<use>`` glyph references by the glyph paths (same drawing; cairosvg
    draws it about 25% faster, as it re-parses a referenced glyph at every use)."""
    glyphs = dict(_GLYPH_DEF.findall(svg))
    if not glyphs:
        return svg
    svg = re.sub(r"<defs>.*?</defs>", "", svg, count=1, flags=re.S)
    return _GLYPH_USE.sub(lambda m: f'<g transform="{m.group(2)}">{glyphs[m.group(1)]}</g>'
                          if m.group(1) in glyphs else m.group(0), svg)


def rasterize(svg: str, height: int) -> np.ndarray:
    """SVG -> uint8 gray (height, W) on white, with cairosvg."""
    import cairosvg

    png = cairosvg.svg2png(bytestring=inline_glyphs(svg).encode(), output_height=height, background_color="white")
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ValueError("cairosvg produced no image")
    return img


# ------------------------------------------------------------------------------ distortion
def camera_distort(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Camera-PrIMuS-like degradation of a clean gray staff: uint8 (H, W) -> uint8 (H, W).

    Paper and ink tones, slight rotation and perspective, a sinusoidal wave (page curl),
    uneven lighting, blur, sensor noise and JPEG artefacts, each drawn at random.
    """
    h, w = img.shape
    ink = float(rng.uniform(0, 70))
    paper = float(rng.uniform(170, 255))
    out = (paper - (255.0 - img.astype(np.float32)) / 255.0 * (paper - ink)).astype(np.float32)
    border = paper
    # geometry: rotation + perspective in one homography, then a vertical wave
    if rng.random() < 0.8:
        angle = np.deg2rad(rng.uniform(-2.0, 2.0))
        c, s = np.cos(angle), np.sin(angle)
        rot = np.array([[c, -s, (1 - c) * w / 2 + s * h / 2], [s, c, (1 - c) * h / 2 - s * w / 2], [0, 0, 1]])
        j = 0.04 * h
        src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
        dst = (src + rng.uniform(-j, j, size=(4, 2))).astype(np.float32)
        persp = cv2.getPerspectiveTransform(src, dst)
        out = cv2.warpPerspective(out, persp @ rot, (w, h), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=border)
    if rng.random() < 0.4:
        amp, period, phase = rng.uniform(0.5, 0.03 * h), rng.uniform(0.5, 2.0) * w, rng.uniform(0, 2 * np.pi)
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        ys = ys + (amp * np.sin(2 * np.pi * xs / period + phase)).astype(np.float32)
        out = cv2.remap(out, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=border)
    # lighting: a linear gradient and a soft spot
    if rng.random() < 0.7:
        gx, gy = rng.uniform(-0.35, 0.35), rng.uniform(-0.35, 0.35)
        xs = np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :]
        ys = np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None]
        cx, cy, r = rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), rng.uniform(0.2, 0.8)
        light = 1 + gx * xs + gy * ys + rng.uniform(-0.25, 0.25) * np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / r**2)
        out = out * light
    if rng.random() < 0.6:
        sigma = rng.uniform(0.3, 1.2) * h / 96
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    if rng.random() < 0.6:
        out = out + rng.normal(0, rng.uniform(2, 12), size=out.shape).astype(np.float32)
    out8 = np.clip(out, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        ok, buf = cv2.imencode(".jpg", out8, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 90))])
        out8 = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    return out8


# ------------------------------------------------------------------------------ generation
@dataclass
class Sample:
    index: int
    split: str  # "train" | "val"
    source: str  # "corpus" | "random"
    item_id: str
    label: str
    image: bytes


def _encode(img: np.ndarray, image_format: str) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, 92] if image_format == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, buf = cv2.imencode("." + image_format, img, params)
    if not ok:
        raise ValueError(f"cannot encode {image_format}")
    return buf.tobytes()


class SampleMaker:
    """Makes sample ``i`` of a run; keeps the last parsed tune (consecutive samples share it)."""

    def __init__(self, cfg: SynthMusicConfig, tunes: Sequence[Tune]) -> None:
        self.cfg = cfg
        self.tunes = tunes
        self.vocabulary = frozenset(load_vocabulary(cfg.vocabulary))
        self.order = np.random.default_rng([cfg.seed, 1 << 20]).permutation(len(tunes)) if tunes else np.zeros(0, int)
        self.engraver = Engraver()
        self._cached: tuple[int, list | None] = (-1, None)
        self.stats = GenerationStats()

    def _tune_parts(self, k: int) -> list[list] | None:
        if self._cached[0] != k:
            try:
                measures = parse_tune(self.tunes[k])
            except UnsupportedMusic:
                measures = None
                self.stats.unparsable_tunes += 1
            self._cached = (k, measures)
        return self._cached[1]

    def labelled_tokens(self, i: int, rng: np.random.Generator) -> tuple[str, str, list[str]] | None:
        """(source, item id, tokens) of sample ``i``, or None when its excerpt is unusable."""
        cfg = self.cfg
        use_corpus = len(self.tunes) > 0 and rng.random() < cfg.corpus_ratio
        if not use_corpus:
            tokens = random_melody(rng, cfg, self.vocabulary)
            outside = [t for t in tokens if t not in self.vocabulary]
            if outside:  # a bug in the generator, not bad luck: stop
                raise ValueError(f"random melody {i} holds {outside[0]!r}, outside the vocabulary")
            return "random", f"random:{cfg.seed}:{i}", tokens
        k = int(self.order[(i // cfg.excerpts_per_tune) % len(self.order)])
        parts = self._tune_parts(k)
        measures = parts[int(rng.integers(len(parts)))] if parts else None
        tokens = choose_excerpt(measures, rng, cfg) if measures else None
        if tokens is None:
            self.stats.unsupported_excerpts += 1
            return None
        if rng.random() < 0.3:
            tokens = move_to_clef(tokens, _pick(rng, CLEF_WEIGHTS))
        if any(t not in self.vocabulary for t in tokens):
            self.stats.outside_vocabulary += 1
            return None
        return "corpus", self.tunes[k].tune_id, tokens

    def make(self, i: int) -> Sample | None:
        """Sample ``i`` engraved by Verovio (``make_many`` for LilyPond's share too)."""
        job = self.prepare(i)
        return None if job is None else self.engrave(job)

    def prepare(self, i: int) -> _Job | None:
        """Sample ``i``'s tokens, split and engraver, before anything is drawn (None: skipped)."""
        rng = np.random.default_rng([self.cfg.seed, i])
        picked = self.labelled_tokens(i, rng)
        if picked is None:
            return None
        source, item_id, tokens = picked
        split = "val" if is_val(item_id, self.cfg.val_fraction) else "train"
        if split not in self.cfg.splits:
            return None
        lily = None
        if self.cfg.lilypond > 0 and rng.random() < self.cfg.lilypond:
            from crnn_ocr.synth.lilypond import LilyOptions

            lily = LilyOptions.random(rng)
        return _Job(i, rng, source, item_id, tokens, split, lily)

    def make_many(self, indices: Sequence[int]) -> list[Sample]:
        """Samples of ``indices`` in order, LilyPond's share engraved in one lilypond call."""
        jobs = [job for job in map(self.prepare, indices) if job is not None]
        lily = [job for job in jobs if job.lily is not None]
        if lily:
            from crnn_ocr.synth.lilypond import engrave_batch

            for job, done in zip(lily, engrave_batch([j.tokens for j in lily], [j.lily for j in lily], self.cfg.height)):
                job.image = done.image
                if done.image is None:
                    job.failed = "disagrees" if done.disagrees else "render"
        return [s for s in map(self.engrave, jobs) if s is not None]

    def engrave(self, job: _Job) -> Sample | None:
        """Draw a prepared sample (Verovio, or the LilyPond image already in ``job``), distort, encode."""
        rng, tokens = job.rng, job.tokens
        if job.lily is not None:
            if job.image is None:
                if job.failed == "disagrees":
                    self.stats.agreement_failures += 1
                else:
                    self.stats.render_failures += 1
                return None
            img = job.image
            self.stats.lilypond += 1
            return self._finish(job, img)
        engraving = Engraving.random(rng, self.cfg.fonts)
        try:
            svg = self.engraver.svg(tokens, engraving)
            img = rasterize(svg, self.cfg.height)
        except ValueError:
            self.stats.render_failures += 1
            return None
        if check_agreement(tokens, svg):
            self.stats.agreement_failures += 1
            return None
        return self._finish(job, img)

    def _finish(self, job: _Job, img: np.ndarray) -> Sample:
        if job.rng.random() < self.cfg.distort:
            img = camera_distort(img, job.rng)
        setattr(self.stats, job.source, getattr(self.stats, job.source) + 1)
        return Sample(job.index, job.split, job.source, job.item_id, " ".join(job.tokens),
                      _encode(img, self.cfg.image_format))


@dataclass
class _Job:
    """A sample drawn but not yet engraved (``SampleMaker.prepare``)."""

    index: int
    rng: np.random.Generator
    source: str
    item_id: str
    tokens: list[str]
    split: str
    lily: Any = None  # LilyOptions when LilyPond engraves it
    image: np.ndarray | None = None
    failed: str = ""


_WORKER: SampleMaker | None = None


def _worker_init(cfg: SynthMusicConfig, tunes: Sequence[Tune]) -> None:
    global _WORKER
    _WORKER = SampleMaker(cfg, tunes)


def _worker_range(bounds: tuple[int, int]) -> tuple[list[Sample], GenerationStats]:
    assert _WORKER is not None
    _WORKER.stats = GenerationStats()
    return _WORKER.make_many(range(*bounds)), _WORKER.stats


def iter_samples(cfg: SynthMusicConfig, stats: GenerationStats | None = None) -> Iterator[Sample]:
    """Samples ``0 .. count-1`` in order (unusable ones skipped and counted in ``stats``)."""
    tunes = load_corpus_tunes(cfg.collections) if cfg.corpus_ratio > 0 else []
    stats = stats if stats is not None else GenerationStats()
    chunk = max(cfg.excerpts_per_tune, 128 if cfg.lilypond > 0 else 16)  # lilypond starts in ~2 s: many staves a call
    ranges = [(a, min(cfg.count, a + chunk)) for a in range(0, cfg.count, chunk)]
    if cfg.processes <= 1:
        _worker_init(cfg, tunes)
        parts: Iterator = map(_worker_range, ranges)
    else:
        import multiprocessing as mp

        pool = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn").Pool(
            cfg.processes, initializer=_worker_init, initargs=(cfg, tunes))
        parts = pool.imap(_worker_range, ranges)
    try:
        for samples, part_stats in parts:
            for name in ("corpus", "random", "lilypond", "unsupported_excerpts", "outside_vocabulary", "unparsable_tunes",
                         "render_failures", "agreement_failures"):
                setattr(stats, name, getattr(stats, name) + getattr(part_stats, name))
            yield from samples
    finally:
        if cfg.processes > 1:
            pool.terminate()


def generate(cfg: SynthMusicConfig) -> GenerationStats:
    """Write OUT/train, OUT/val, OUT/vocabulary.txt and OUT/stats.json; returns the counts."""
    from crnn_ocr.data import write_lmdb

    if cfg.count < 1:
        raise ValueError(f"--count must be at least 1, got {cfg.count}")
    if not 0 <= cfg.corpus_ratio <= 1 or not 0 <= cfg.val_fraction < 1 or not 0 <= cfg.lilypond <= 1:
        raise ValueError("--corpus-ratio and --lilypond must be in [0, 1] and --val-fraction in [0, 1)")
    if cfg.lilypond > 0:
        from crnn_ocr.synth.lilypond import LilyPondMissing, lilypond_path

        try:
            lilypond_path()  # before any work
        except LilyPondMissing as e:
            raise ValueError(f"--lilypond {cfg.lilypond}: {e}") from None
    if cfg.min_measures < 1 or cfg.max_measures < cfg.min_measures:
        raise ValueError(f"measures: need 1 <= min ({cfg.min_measures}) <= max ({cfg.max_measures})")
    unknown = [f for f in cfg.fonts if f not in VEROVIO_FONTS]
    if unknown:
        raise ValueError(f"unknown Verovio font {unknown[0]!r}; choose from {', '.join(VEROVIO_FONTS)}")
    out = Path(cfg.out)
    for split in ("train", "val"):
        if (out / split / "data.mdb").exists() and not cfg.overwrite:
            raise FileExistsError(f"{out / split}: an LMDB already exists there (use --overwrite)")
    vocabulary = load_vocabulary(cfg.vocabulary)
    stats = GenerationStats()
    start = time.perf_counter()
    val_samples: list[tuple[bytes, str]] = []  # held in memory: a small share
    items: dict[str, set[str]] = {"train": set(), "val": set()}

    def train_samples() -> Iterator[tuple[bytes, str]]:
        for sample in iter_samples(cfg, stats):
            items[sample.split].add(sample.item_id)
            if sample.split == "val":
                val_samples.append((sample.image, sample.label))
            else:
                yield sample.image, sample.label

    stats.written["train"] = write_lmdb(out / "train", train_samples(), overwrite=cfg.overwrite)
    stats.written["val"] = write_lmdb(out / "val", val_samples, overwrite=cfg.overwrite)
    stats.seconds = time.perf_counter() - start
    (out / "vocabulary.txt").write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
    (out / "stats.json").write_text(json.dumps(
        {"config": asdict(cfg), "stats": asdict(stats), "tunes": {k: len(v) for k, v in items.items()}}, indent=1))
    return stats


def parse_args(argv: list[str] | None) -> SynthMusicConfig:
    from crnn_ocr.cli import ArgumentParser

    p = ArgumentParser(prog="synth_music.py", description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    d = SynthMusicConfig(out="")
    p.add_argument("--out", required=True, help="output folder: train/, val/ LMDBs, vocabulary.txt, stats.json")
    p.add_argument("--count", type=int, default=d.count, help="samples to draw (a few are dropped and counted)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--corpus-ratio", type=float, default=d.corpus_ratio, help="share of real-tune excerpts")
    p.add_argument("--val-fraction", type=float, default=d.val_fraction, help="share of tunes held out into val/")
    p.add_argument("--excerpts-per-tune", type=int, default=d.excerpts_per_tune)
    p.add_argument("--min-measures", type=int, default=d.min_measures)
    p.add_argument("--max-measures", type=int, default=d.max_measures)
    p.add_argument("--max-tokens", type=int, default=d.max_tokens)
    p.add_argument("--vocabulary", default=None,
                   help="token file labels must stay inside (default: PrIMuS's semantic vocabulary, shipped)")
    p.add_argument("--height", type=int, default=d.height, help="stored image height in pixels")
    p.add_argument("--distort", type=float, default=d.distort, help="fraction of images with camera-like distortion")
    p.add_argument("--format", dest="image_format", default=d.image_format, choices=["png", "jpg"])
    p.add_argument("--fonts", nargs="+", default=list(d.fonts), help=f"Verovio fonts ({', '.join(VEROVIO_FONTS)})")
    p.add_argument("--collections", nargs="+", default=list(d.collections), help="music21 corpus ABC collections")
    p.add_argument("--processes", type=int, default=d.processes, help="worker processes (default 1)")
    p.add_argument("--lilypond", type=float, default=d.lilypond,
                   help="share of staves engraved by LilyPond instead of Verovio (needs Debian's lilypond)")
    p.add_argument("--splits", nargs="+", choices=["train", "val"], default=list(d.splits),
                   help="engrave only these sides (e.g. val: held-out tunes only, for test sets)")
    p.add_argument("--overwrite", action="store_true")
    a = p.parse_args(argv)
    for name in ("count", "excerpts_per_tune", "height", "processes", "max_tokens"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(a, name)}")
    return SynthMusicConfig(
        out=a.out, count=a.count, seed=a.seed, corpus_ratio=a.corpus_ratio, val_fraction=a.val_fraction,
        excerpts_per_tune=a.excerpts_per_tune, min_measures=a.min_measures, max_measures=a.max_measures,
        max_tokens=a.max_tokens, vocabulary=a.vocabulary, height=a.height, distort=a.distort, image_format=a.image_format,
        collections=tuple(a.collections), fonts=tuple(a.fonts), processes=a.processes, lilypond=a.lilypond, splits=tuple(a.splits),
        overwrite=a.overwrite,
    )


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    stats = generate(cfg)
    print(stats.summary())
    return 0 if sum(stats.written.values()) else 1

