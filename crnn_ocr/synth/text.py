"""Synthetic word images rendered straight into a standard-layout LMDB.

    python datasets/synth_text.py --out data/synth --count 20000 --seed 0 [--words FILE]
        [--alphabet alphanumeric] [--fonts DIR_OR_FILE ...] [--height 32] [--gray]

Words come from ``--words`` (one per line), else wordfreq's 30,000 most frequent English words
(when wordfreq is installed), else /usr/share/dict/words, mixed with random strings over the
alphabet (digits, mixed case, punctuation where the alphabet has it). Only text the alphabet can
encode is used, and each label is exactly the rendered text.

Fonts are found offline: ``--fonts``, else the system's (/usr/share/fonts, ...) plus the DejaVu
and STIX fonts bundled inside matplotlib, filtered to those whose character map covers the
alphabet; Pillow's built-in scalable font is the last resort. Each word varies font, size, stroke
weight, letter spacing, colours (text/background luminance contrast of at least 70/255 everywhere before
noise), background (flat, gradient, noise texture), hollow letters, shadows, border lines, padding,
rotation, perspective, blur, low resolution, noise and JPEG artefacts. For photographs' realism
(``Scene``): ``--colors`` takes text/background colour pairs clustered from real crops
(``datasets/crop_colors.py``), ``--photos`` blends the texture of photographs under the text,
``--neighbors`` cuts crops the way a detector does (part of a neighbouring letter or line, or an
edge, in the margin), ``--curve`` bends words and ``--wide-margin`` widens a side; ``--pattern-ratio``
adds prices, phone numbers, web addresses, times and codes to the words. Output depends
only on the seed (and the fonts installed): sample ``i`` is drawn from ``default_rng([seed, i])``.
``labels.txt`` beside the LMDB lists the labels in order (usable as a lexicon).
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import re
import string
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont, features

from crnn_ocr.alphabet import Alphabet
from crnn_ocr.data import write_lmdb
from crnn_ocr.preprocessing import resize_to_height

DEFAULT_FONT = "<pillow-default>"
"""Stands for Pillow's built-in scalable font (``ImageFont.load_default(size)``)."""

SYSTEM_FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.fonts", "~/.local/share/fonts")
# Fallback/symbol/display fonts whose ASCII code points do not draw ordinary letters (fonts-linex's
# Greek faces ellenike, ellenbold, ellenita, elleboli and alfa-beta draw Greek letters there).
_EXCLUDED_FONTS = re.compile(
    r"LastResort|STIXNonUni|STIXSiz|Display|^cm[a-z]+10\.|Symbol|Dingbat|D050000L|Math|Nushu|^ellen|^elleb|^alfa-beta",
    re.IGNORECASE,
)


# ------------------------------------------------------------------------------------ fonts
def _font_dirs() -> list[Path]:
    dirs = [Path(d).expanduser() for d in SYSTEM_FONT_DIRS]
    try:
        import matplotlib

        dirs.append(Path(matplotlib.get_data_path()) / "fonts" / "ttf")
    except ImportError:
        pass
    return dirs


@functools.cache
def _font_charset(path: str) -> frozenset[str]:
    from fontTools.ttLib import TTFont

    try:
        with TTFont(path, lazy=True, fontNumber=0) as font:
            return frozenset(chr(c) for c in (font.getBestCmap() or {}))
    except Exception:  # unreadable font file: treat as covering nothing
        return frozenset()


def find_fonts(sources: Sequence[str | os.PathLike] | None = None, charset: str = "") -> list[str]:
    """Font files (sorted, one per file name) under ``sources`` (files or dirs) that draw every char of ``charset``.

    With no sources: system font folders plus matplotlib's bundled fonts. Returns
    ``[DEFAULT_FONT]`` when nothing usable is found.
    """
    candidates: list[Path] = []
    for src in [Path(s) for s in sources] if sources else _font_dirs():
        if src.is_file():
            candidates.append(src)
        elif src.is_dir():
            candidates.extend(p for p in src.rglob("*") if p.suffix.lower() in (".ttf", ".otf"))
    needed = set(charset) - set(string.whitespace)
    fonts: dict[str, str] = {}
    for path in sorted(candidates, key=lambda p: (p.name, str(p))):
        if path.name in fonts or _EXCLUDED_FONTS.search(path.name):
            continue
        try:
            if needed <= _font_charset(str(path)):
                fonts[path.name] = str(path)
        except ImportError:  # no fontTools: trust the file
            fonts[path.name] = str(path)
    return sorted(fonts.values()) or [DEFAULT_FONT]


def font_families(paths: Sequence[str]) -> list[list[str]]:
    """Group font files by family (file name up to the first ``-``, ``_`` or space), so that a family
    with 38 weights is drawn as often as one with a single file."""
    groups: dict[str, list[str]] = {}
    for path in paths:
        stem = Path(path).stem
        groups.setdefault(re.split(r"[-_ ]", stem, maxsplit=1)[0].lower(), []).append(path)
    return [groups[k] for k in sorted(groups)]


@functools.lru_cache(maxsize=4096)
def _load_font(path: str, size: int, shaped: bool = False) -> ImageFont.FreeTypeFont:
    """The face at ``size`` px; ``shaped``: laid out by libraqm (kerning, ligatures such as fi/fl, the
    font's own contextual forms), as browsers and typesetters lay out text, else glyph by glyph."""
    if path == DEFAULT_FONT:
        return ImageFont.load_default(size)
    engine = ImageFont.Layout.RAQM if shaped else ImageFont.Layout.BASIC
    return ImageFont.truetype(path, size, layout_engine=engine)


def check_shaping(shaping: float) -> None:
    """``ValueError`` unless ``shaping`` is a share in [0, 1] this Pillow can render (libraqm for > 0)."""
    if not 0.0 <= shaping <= 1.0:
        raise ValueError(f"shaping must be in [0, 1], got {shaping}")
    if shaping > 0 and not features.check("raqm"):
        raise ValueError("shaping > 0 needs Pillow built with libraqm (the PyPI wheels are; "
                         "python -c \"from PIL import features; print(features.check('raqm'))\" says False here)")


# ------------------------------------------------------------------------------------ words
def load_words(path: str | os.PathLike | None = None) -> list[str]:
    """The word list: ``path`` (one per line), else wordfreq's top 30,000 English words, else the system dictionary."""
    if path is not None:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: cannot read word list: {e}") from None
        return [w.strip() for w in lines if w.strip()]
    try:
        import wordfreq

        return list(wordfreq.top_n_list("en", 30000))
    except ImportError:
        pass
    try:
        return [w.strip() for w in Path("/usr/share/dict/words").read_text(encoding="utf-8").splitlines() if w.strip()]
    except (OSError, UnicodeDecodeError):
        return []


def _usable(text: str, alphabet: Alphabet, max_length: int) -> bool:
    return (
        0 < len(text) <= max_length
        and text == text.strip()
        and "  " not in text
        and alphabet.try_encode(text) is not None
    )


class TextSource:
    """Draws texts: words (in lower, Title or UPPER case) and random strings over the alphabet."""

    def __init__(
        self, alphabet: Alphabet, words: Sequence[str], *, word_ratio: float = 0.7, max_length: int = 16,
        pattern_ratio: float = 0.0,
    ) -> None:  # fmt: skip
        if alphabet.is_tokenized:
            raise ValueError("synthetic text needs a character alphabet, not a token alphabet")
        chars = set(alphabet.symbols)
        if alphabet.ignore_case:
            chars |= {c.upper() for c in chars}
        chars = {c for c in chars if alphabet.try_encode(c) is not None}
        self.alphabet = alphabet
        self.max_length = max_length
        self.words = [w for w in dict.fromkeys(words) if _usable(w, alphabet, max_length)]
        self.word_ratio = word_ratio if self.words else 0.0
        if not 0.0 <= pattern_ratio <= 1.0:
            raise ValueError(f"pattern_ratio must be in [0, 1], got {pattern_ratio}")
        self.pattern_ratio = pattern_ratio
        self.digits = "".join(sorted(c for c in chars if c in string.digits))
        self.letters = "".join(sorted(c for c in chars if c.isalpha()))
        self.punct = "".join(sorted(c for c in chars if not c.isalnum() and not c.isspace()))
        self.space = " " in chars
        self.all = "".join(sorted(c for c in chars if not c.isspace()))
        if not self.all:
            raise ValueError("the alphabet has no drawable characters")

    def __call__(self, rng: np.random.Generator) -> str:
        if self.pattern_ratio > 0 and rng.random() < self.pattern_ratio:  # no draw at 0: older seeds stay
            for _ in range(4):
                text = self._pattern(rng)
                if _usable(text, self.alphabet, self.max_length):
                    return text
        if rng.random() < self.word_ratio:
            word = self.words[int(rng.integers(len(self.words)))]
            variant = rng.choice(3, p=[0.4, 0.3, 0.3])  # scene text is often UPPER case
            cased = (word, word.title(), word.upper())[variant]
            return cased if _usable(cased, self.alphabet, self.max_length) else word
        return self._random_string(rng)

    def _word(self, rng: np.random.Generator) -> str:
        return self.words[int(rng.integers(len(self.words)))] if self.words else self._random_string(rng)

    def _pattern(self, rng: np.random.Generator) -> str:
        """Text of the street and the shop: prices, phone numbers, web addresses, times, dates,
        percentages, brand-like compounds, codes and numbered words."""
        d = lambda n: "".join(str(int(v)) for v in rng.integers(0, 10, size=n))  # noqa: E731
        w = lambda: self._word(rng)  # noqa: E731
        kind = int(rng.integers(10))
        if kind == 0:
            cur = "$$$\u20ac\u00a3"[int(rng.integers(5))]
            num = str(int(rng.integers(1, 1000))) + (("." if rng.random() < 0.7 else ",") + d(2) if rng.random() < 0.7 else "")
            return cur + num if rng.random() < 0.8 else num + cur
        if kind == 1:
            forms = (f"{d(3)}-{d(4)}", f"({d(3)}) {d(3)}-{d(4)}", f"{d(3)}.{d(3)}.{d(4)}", f"+{d(2)} {d(3)} {d(4)}", f"0{d(3)} {d(6)}")
            return forms[int(rng.integers(len(forms)))]
        if kind == 2:
            tld = (".com", ".org", ".net", ".co.uk", ".de", ".io")[int(rng.integers(6))]
            forms = (f"www.{w()}{tld}", f"{w()}{tld}", f"{w()}@{w()}{tld}", f"{w()}{w()}{tld}")
            return forms[int(rng.integers(len(forms)))].lower()
        if kind == 3:
            forms = (f"{int(rng.integers(1, 13))}:{d(2)}", f"{int(rng.integers(1, 13))}{'ap'[int(rng.integers(2))]}m",
                     f"{int(rng.integers(1, 29)):02d}/{int(rng.integers(1, 13)):02d}/{int(rng.integers(1970, 2030))}",
                     f"{int(rng.integers(0, 24))}:{d(2)}-{int(rng.integers(0, 24))}:{d(2)}")  # fmt: skip
            return forms[int(rng.integers(len(forms)))]
        if kind == 4:
            return (str(int(rng.integers(1, 100))) + "%", "24/7", f"{int(rng.integers(1, 10))}/{int(rng.integers(2, 10))}")[int(rng.integers(3))]
        if kind in (5, 6):  # brand-like: CamelCase compounds, word+number, clipped words
            a, b = w(), w()
            forms = (a.title() + b.title(), a.upper() + b.lower(), a.title() + d(int(rng.integers(1, 3))),
                     a[: max(2, len(a) // 2)].title() + b.lower(), a.lower() + "-" + b.lower(), a.upper() + "&" + b.upper())
            return forms[int(rng.integers(len(forms)))]
        if kind == 7:  # codes: B-12, A4, XJ220, No.5
            L = "ABCDEFGHJKLMNPRSTUVWXYZ"
            letters = "".join(L[int(i)] for i in rng.integers(len(L), size=int(rng.integers(1, 4))))
            forms = (f"{letters}-{d(int(rng.integers(1, 4)))}", f"{letters}{d(int(rng.integers(1, 5)))}",
                     f"No.{int(rng.integers(1, 100))}", f"#{d(int(rng.integers(1, 4)))}")
            return forms[int(rng.integers(len(forms)))]
        if kind == 8:  # a word with punctuation around it
            forms = (f"{w().title()}!", f"\"{w()}\"", f"({w()})", f"{w()},", f"{w()}.", f"{w().title()}'s", f"{w()}?")
            return forms[int(rng.integers(len(forms)))]
        return d(int(rng.integers(1, 7)))  # plain numbers: house numbers, years, counts

    def _random_string(self, rng: np.random.Generator) -> str:
        length = int(rng.integers(1, min(self.max_length, 12) + 1))
        kind = rng.random()
        if kind < 0.25 and self.digits:
            pool = self.digits
        elif kind < 0.75 or not self.punct:
            pool = (self.letters + self.digits) or self.all
        else:
            pool = self.all
        text = "".join(pool[int(i)] for i in rng.integers(len(pool), size=length))
        if self.space and length >= 3 and rng.random() < 0.1:  # one inner space, never at the ends
            k = int(rng.integers(1, length - 1))
            text = text[:k] + " " + text[k + 1 :]
        return text


# ------------------------------------------------------------------------------------ rendering
class Palette:
    """(text, background) RGB colour pairs with weights, as ``datasets/crop_colors.py`` writes them
    from real crops: one ``text_r text_g text_b bg_r bg_g bg_b count`` line per pair."""

    def __init__(self, pairs: np.ndarray, weights: np.ndarray) -> None:
        self.pairs = np.asarray(pairs, dtype=np.float32).reshape(-1, 2, 3)
        w = np.asarray(weights, dtype=np.float64)
        if len(self.pairs) == 0 or len(w) != len(self.pairs) or (w < 0).any() or w.sum() <= 0:
            raise ValueError("a palette needs at least one colour pair with a positive weight")
        self.p = w / w.sum()

    @classmethod
    def load(cls, path: str | os.PathLike) -> Palette:
        rows = []
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: cannot read colour palette: {e}") from None
        for n, line in enumerate(lines, 1):
            if line.strip() and not line.lstrip().startswith("#"):
                try:
                    values = [float(v) for v in line.split()]
                except ValueError:
                    values = []
                if len(values) != 7 or not all(0 <= v <= 255 for v in values[:6]):
                    raise ValueError(f"{path}:{n}: expected 'text_r text_g text_b bg_r bg_g bg_b count' (0-255), got {line!r}")
                rows.append(values)
        if not rows:
            raise ValueError(f"{path}: no colour pairs")
        arr = np.array(rows)
        return cls(arr[:, :6], arr[:, 6])

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(ink, paper): a pair drawn by weight, each channel moved by up to 12 levels."""
        ink, paper = self.pairs[int(rng.choice(len(self.pairs), p=self.p))]
        jitter = rng.uniform(-12, 12, size=(2, 3))
        return np.clip(ink + jitter[0], 0, 255), np.clip(paper + jitter[1], 0, 255)


PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


MAX_PHOTO_GAIN = 2.0  # a photograph's texture is amplified at most this much under the text


class PhotoBackgrounds:
    """Random patches of the photographs under some folders (e.g. /usr/share/backgrounds from the
    ``gnome-backgrounds`` and ``mate-backgrounds`` packages), each decoded once at most 800 px a side."""

    def __init__(self, sources: Sequence[str | os.PathLike]) -> None:
        files: list[Path] = []
        for src in map(Path, sources):
            if src.is_file():
                files.append(src)
            elif src.is_dir():
                files.extend(p for p in src.rglob("*") if p.suffix.lower() in PHOTO_EXTENSIONS)
            else:
                raise ValueError(f"{src}: no such photo file or folder")
        self.files = sorted(set(files))
        if not self.files:
            raise ValueError(f"no photographs ({', '.join(PHOTO_EXTENSIONS)}) under {', '.join(map(str, sources))}")
        self._cache: dict[int, np.ndarray | None] = {}

    def _photo(self, i: int) -> np.ndarray | None:
        if i not in self._cache:
            bgr = cv2.imread(str(self.files[i]), cv2.IMREAD_COLOR)
            if bgr is not None:
                f = 800 / max(bgr.shape[:2])
                if f < 1:
                    bgr = cv2.resize(bgr, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
                bgr = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32)
            self._cache[i] = bgr
        return self._cache[i]

    def patch(self, rng: np.random.Generator, h: int, w: int) -> np.ndarray | None:
        """A ``(h, w, 3)`` float RGB patch, cut at a random place and scale (None: unreadable file)."""
        photo = self._photo(int(rng.integers(len(self.files))))
        if photo is None:
            return None
        ph, pw = photo.shape[:2]
        scale = rng.uniform(0.3, 1.0) * min(ph / h, pw / w)  # the patch covers 30-100% of what fits
        ch, cw = max(1, int(h * scale)), max(1, int(w * scale))
        y, x = int(rng.integers(0, ph - ch + 1)), int(rng.integers(0, pw - cw + 1))
        return cv2.resize(photo[y : y + ch, x : x + cw], (w, h), interpolation=cv2.INTER_LINEAR)


class Scene:
    """What makes synthetic words look like photographed ones (all off by default, so older seeds
    render as before).

    ``palette``: share ``palette_ratio`` of crops take their (text, background) colours from real
    crops. ``photos``: share ``photo_ratio`` of backgrounds carry the texture of a photograph.
    ``neighbors``: share of crops cut the way a text detector cuts them, with part of a
    neighbouring letter at a side, part of the line above or below, or an edge in the margin.
    ``curve``: share of words bent along a wave. ``wide_margin``: share with a margin of up to
    1.2 line heights at a side.
    """

    def __init__(
        self, *, palette: Palette | None = None, photos: PhotoBackgrounds | None = None, palette_ratio: float = 0.6,
        photo_ratio: float = 0.5, neighbors: float = 0.0, curve: float = 0.0, wide_margin: float = 0.0,
    ) -> None:  # fmt: skip
        for name, v in (("palette_ratio", palette_ratio), ("photo_ratio", photo_ratio), ("neighbors", neighbors),
                        ("curve", curve), ("wide_margin", wide_margin)):  # fmt: skip
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        self.palette, self.photos = palette, photos
        self.palette_ratio, self.photo_ratio = palette_ratio, photo_ratio
        self.neighbors, self.curve, self.wide_margin = neighbors, curve, wide_margin


_NEIGHBOR_CHARS = string.ascii_letters + string.digits


def _luminance(rgb: np.ndarray) -> float:
    return float(rgb @ np.array([0.299, 0.587, 0.114]))


def _color_with_luminance(rng: np.random.Generator, lum: float, chroma: float) -> np.ndarray:
    """An RGB colour of roughly luminance ``lum``, tinted by up to ``chroma``."""
    tint = rng.uniform(-chroma, chroma, size=3)
    rgb = np.clip(lum + tint - _luminance(tint), 0, 255)
    return np.clip(rgb + (lum - _luminance(rgb)), 0, 255)


def _pick_luminances(rng: np.random.Generator, gap: float) -> tuple[float, float]:
    """Background and text luminance at least ``gap`` apart (dark text on light 80% of the time)."""
    bg = rng.uniform(0, 255)
    dark_text = bg >= gap and (bg + gap > 255 or rng.random() < 0.8)
    if not dark_text and bg + gap > 255:  # neither side has room: move the background to an end
        bg = 255.0 if bg > 127.5 else 0.0
        dark_text = bg == 255.0
    return (bg, rng.uniform(0, bg - gap)) if dark_text else (bg, rng.uniform(bg + gap, 255))


def _background(rng: np.random.Generator, h: int, w: int, base: np.ndarray, spread: float) -> np.ndarray:
    """(h, w, 3) float background around colour ``base``, its luminance varying by at most ``spread``."""
    kind = rng.random()
    if kind < 0.45 or spread == 0:
        return np.broadcast_to(base, (h, w, 3)).astype(np.float32)
    if kind < 0.75:  # linear gradient along a random direction
        angle = rng.uniform(0, 2 * math.pi)
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        ramp = xs * math.cos(angle) + ys * math.sin(angle)
        ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6) * 2 - 1  # [-1, 1]
        return (base + ramp[:, :, None] * spread).astype(np.float32)
    noise = rng.normal(0, 1, size=(max(1, h // 4), max(1, w // 4))).astype(np.float32)
    noise = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)  # soft texture
    noise = np.clip(noise / 2.5, -1, 1)
    return (base + noise[:, :, None] * spread).astype(np.float32)


def _layout(text: str, font: ImageFont.FreeTypeFont, stroke: int, tracking: float) -> tuple[list[float], tuple[int, int, int, int]]:
    """Pen x of each character (``tracking`` px added between them) and the ink box (left, top, right, bottom)."""
    if not tracking:
        return [0.0], font.getbbox(text, stroke_width=stroke)
    xs, x = [], 0.0
    left = top = 1 << 30
    right = bottom = -(1 << 30)
    for ch in text:
        xs.append(x)
        x0, y0, x1, y1 = font.getbbox(ch, stroke_width=stroke)
        if x1 > x0:  # spaces have no ink
            left, top, right, bottom = min(left, x + x0), min(top, y0), max(right, x + x1), max(bottom, y1)
        x += font.getlength(ch) + tracking
    if right < left:
        left, top, right, bottom = 0, 0, 1, 1
    return xs, (int(math.floor(left)), int(top), int(math.ceil(right)), int(bottom))


def _line_box(text: str, font: ImageFont.FreeTypeFont, stroke: int, tracking: float) -> tuple[list[float], int, int, int, int]:
    """``_layout`` plus the line box: (pen xs, ink left, line top, ink width, line height); the line
    spans the font's ascent + descent, widened for glyphs that reach beyond it."""
    xs, (left, top, right, bottom) = _layout(text, font, stroke, tracking)
    ascent, descent = font.getmetrics()
    v_top, v_bottom = min(0, top), max(ascent + descent, bottom)
    return xs, left, v_top, max(1, right - left), v_bottom - v_top


def _text_mask(text: str, font: ImageFont.FreeTypeFont, xs: list[float], origin: tuple[float, float], size: tuple[int, int], stroke: int) -> np.ndarray:
    """(h, w) float coverage in [0, 1] of ``text`` drawn at ``origin`` (per character when ``xs`` has one pen x each)."""
    img = Image.new("L", size, 0)
    draw = ImageDraw.Draw(img)
    pieces = zip(text, xs) if len(xs) == len(text) and len(text) > 1 else [(text, 0.0)]
    for piece, x in pieces:
        draw.text((origin[0] + x, origin[1]), piece, font=font, fill=255, stroke_width=stroke, stroke_fill=255)
    return np.asarray(img, dtype=np.float32) / 255.0


def render_word(
    text: str, font_path: str, rng: np.random.Generator, *, height: int = 32, channels: int = 3, plain: bool = False,
    scene: Scene | None = None, shaped: bool = False, blank: bool = False,
) -> np.ndarray:
    """Render ``text`` as a word crop: uint8 ``(height, w, 3)`` RGB (or ``(height, w)`` for channels=1).

    Besides font, size, colours and background, a crop may get letter spacing, an outline in the
    ink colour (hollow letters), a soft drop shadow, a border line in the margin, rotation,
    perspective, blur, low-resolution resampling, noise and JPEG artefacts. The text keeps a
    luminance contrast of at least 70/255 against every background pixel before noise.

    ``plain``: a word from a printed page or a screen instead of a photo: near-black ink on
    near-white paper, the font's own spacing, upright, and at most a light scanner blur and noise.

    ``scene``: colours of real crops, photo textures, detector-like cuts, curved lines (``Scene``).

    ``shaped``: lay the word out with libraqm (kerning, ligatures) instead of glyph by glyph (words
    drawn with letter spacing stay glyph by glyph).

    ``blank``: everything but the text (and the neighbours a ``scene`` cut adds): the crop a detector's
    false positive would give, for training a reader to answer nothing there. Not for ``plain``.
    """
    if plain and blank:
        raise ValueError("a blank crop is rendered as scene text, not plain")
    if plain:
        return _render_plain(text, font_path, rng, height=height, channels=channels, shaped=shaped)
    size = int(rng.integers(max(8, int(height * 0.7)), int(height * 1.6) + 1))
    font = _load_font(font_path, size, shaped)
    stroke = 1 if size >= 28 and rng.random() < 0.15 else 0
    tracking = size * rng.uniform(-0.03, 0.25) if len(text) > 1 and rng.random() < 0.2 else 0.0
    xs, left, v_top, text_w, line_h = _line_box(text, font, stroke, tracking)

    angle = rng.uniform(-4, 4) if rng.random() < 0.4 else 0.0
    lift = math.ceil(text_w / 2 * abs(math.sin(math.radians(angle))))  # room so rotation never clips
    pad_l, pad_r = (int(line_h * rng.uniform(0.0, 0.35)) + 1 for _ in range(2))
    pad_t, pad_b = (int(line_h * rng.uniform(0.0, 0.25)) + lift + 1 for _ in range(2))
    cut = _SceneCut.draw(rng, scene, font, line_h, text_w) if scene is not None else None
    if cut is not None:
        pad_l, pad_r, pad_t, pad_b = cut.pads(pad_l, pad_r, pad_t, pad_b)
    w, h = text_w + pad_l + pad_r, line_h + pad_t + pad_b
    origin = (pad_l - left, pad_t - v_top)

    outline = 0
    if size >= 20 and rng.random() < 0.08:  # hollow letters: only the outline is inked
        outline = max(1, size // 16)
        xs, _ = _layout(text, font, outline, tracking)
    mask = _text_mask(text, font, xs, origin, (w, h), max(stroke, outline))  # (h, w) coverage
    if outline:
        inner = _text_mask(text, font, xs, origin, (w, h), 0)
        mask = np.clip(mask - inner * rng.uniform(0.6, 1.0), 0, 1)
    if cut is not None:
        mask = np.maximum(mask, cut.neighbor_mask(font, origin, (w, h), stroke))
    if blank:  # every draw made as for the word, nothing inked
        mask = np.zeros_like(mask)

    spread = float(rng.choice([0.0, 20.0, 35.0]))  # background luminance variation
    gap = float(rng.choice([70.0, 100.0, 100.0])) + spread
    bg_lum, fg_lum = _pick_luminances(rng, gap)
    paper, ink = _color_with_luminance(rng, bg_lum, chroma=70), _color_with_luminance(rng, fg_lum, chroma=90)
    if abs(_luminance(paper) - _luminance(ink)) < gap:  # tint clipping ate the contrast: use grays
        paper, ink = np.full(3, bg_lum), np.full(3, fg_lum)
    photo = None
    if scene is not None:
        ink, paper, spread, photo = _scene_colors(rng, scene, ink, paper, spread, h, w)
    img = _background(rng, h, w, paper, spread) if photo is None else photo  # (h, w, 3)
    if rng.random() < 0.15:  # soft drop shadow, part of the way from paper to ink
        dx, dy = (int(v) for v in rng.integers(-3, 4, size=2))
        shadow = cv2.GaussianBlur(np.roll(mask, (dy, dx), axis=(0, 1)), (0, 0), rng.uniform(0.5, 2.0))
        shade = paper + (ink - paper) * rng.uniform(0.3, 0.6)
        img = img * (1.0 - shadow[:, :, None]) + shade.astype(np.float32) * shadow[:, :, None]
    if rng.random() < 0.1 and (pad_t > 2 or pad_b > 2):  # a sign border or underline in the margin
        y = int(rng.integers(0, max(1, pad_t - 1))) if pad_t > pad_b else h - 1 - int(rng.integers(0, max(1, pad_b - 1)))
        img = np.array(img, dtype=np.float32)
        img[y] = ink
    if cut is not None and cut.edge is not None:  # the edge of a sign or a box in a side margin
        img = np.array(img, dtype=np.float32)
        x = cut.edge if cut.edge >= 0 else w + cut.edge
        img[:, x : x + cut.edge_width] = ink
    img = img * (1.0 - mask[:, :, None]) + ink.astype(np.float32) * mask[:, :, None]
    if cut is not None and cut.wave:
        img = cut.bend(img)

    if angle:
        rot = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        img = cv2.warpAffine(img, rot, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if rng.random() < 0.3:  # perspective: corners only move inwards, so nothing leaves the frame
        src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
        jitter = rng.uniform(0, 1, size=(4, 2)) * np.float32([w * 0.04, h * 0.1])
        dst = (src + jitter * np.float32([[1, 1], [-1, 1], [-1, -1], [1, -1]])).astype(np.float32)
        img = cv2.warpPerspective(img, cv2.getPerspectiveTransform(src, dst), (w, h), borderMode=cv2.BORDER_REPLICATE)
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.0) * size / height)
    if rng.random() < 0.4:
        img = img + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(rng.uniform(2, 10))
    out = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    out = resize_to_height(out, height, min_width=1)  # (height, w', 3)
    if rng.random() < 0.2:  # a low-resolution source, scaled up to the crop size
        f = rng.uniform(0.45, 0.8)
        small = cv2.resize(out, (max(1, int(out.shape[1] * f)), max(1, int(height * f))), interpolation=cv2.INTER_AREA)
        out = cv2.resize(small, (out.shape[1], height), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.2:  # JPEG artefacts of a compressed photo
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 80))])
        out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if ok else out
    return cv2.cvtColor(out, cv2.COLOR_RGB2GRAY) if channels == 1 else out


class _SceneCut:
    """One crop's detector-like cut and bend, decided before the canvas is sized."""

    def __init__(self) -> None:
        self.extra = [0, 0, 0, 0]  # pads forced to at least these (left, right, top, bottom)
        self.add = [0, 0, 0, 0]  # added to the pads
        self.letters: list[tuple[str, str, int]] = []  # (side, char, visible px)
        self.line: tuple[str, str, int, float] | None = None  # (above|below, text, visible px, x shift)
        self.edge: int | None = None  # x of an edge line (negative: from the right)
        self.edge_width = 1
        self.wave = 0.0
        self.period = 1.0
        self.phase = 0.0

    @classmethod
    def draw(cls, rng: np.random.Generator, scene: Scene, font: ImageFont.FreeTypeFont, line_h: int, text_w: int) -> _SceneCut:
        cut = cls()
        if rng.random() < scene.wide_margin:
            cut.add[int(rng.integers(2))] += int(line_h * rng.uniform(0.4, 1.2))
        if rng.random() < scene.curve:
            cut.wave = line_h * rng.uniform(0.04, 0.12)
            cut.period = text_w * rng.uniform(1.0, 3.0)
            cut.phase = rng.uniform(0, 2 * math.pi)
            cut.add[2] += math.ceil(cut.wave)
            cut.add[3] += math.ceil(cut.wave)
        if rng.random() < scene.neighbors:
            kind = int(rng.integers(5))
            if kind < 3:  # part of the letter before, after, or both
                for side in (("left",), ("right",), ("left", "right"))[kind]:
                    ch = _NEIGHBOR_CHARS[int(rng.integers(len(_NEIGHBOR_CHARS)))]
                    x0, _, x1, _ = font.getbbox(ch)
                    visible = max(1, int((x1 - x0) * rng.uniform(0.15, 0.6)))
                    space = int(line_h * rng.uniform(0.1, 0.45)) + 1
                    cut.letters.append((side, ch, visible))
                    cut.extra[0 if side == "left" else 1] = visible + space
            elif kind == 3:  # the bottom of the line above or the top of the line below
                n = int(rng.integers(3, 12))
                line = "".join(_NEIGHBOR_CHARS[int(i)] for i in rng.integers(len(_NEIGHBOR_CHARS), size=n))
                visible = max(1, int(line_h * rng.uniform(0.08, 0.3)))
                where = "above" if rng.random() < 0.5 else "below"
                cut.line = (where, line, visible, rng.uniform(-0.6, 0.6))
                cut.add[2 if where == "above" else 3] += visible + int(line_h * rng.uniform(0.05, 0.2))
            else:  # an edge line in the left or right margin
                gap = int(line_h * rng.uniform(0.1, 0.4)) + 1
                cut.edge_width = int(rng.integers(1, 3))
                left = rng.random() < 0.5
                cut.edge = int(rng.integers(0, 3)) if left else -int(rng.integers(cut.edge_width, cut.edge_width + 3))
                cut.extra[0 if left else 1] = gap + 3 + cut.edge_width
        return cut

    def pads(self, *pads: int) -> tuple[int, int, int, int]:
        left, right, top, bottom = (max(p, e) + a for p, e, a in zip(pads, self.extra, self.add))
        return left, right, top, bottom

    def neighbor_mask(self, font: ImageFont.FreeTypeFont, origin: tuple[float, float], size: tuple[int, int], stroke: int) -> np.ndarray:
        """Coverage of the neighbouring letters and line, cut by the crop's edges."""
        w, h = size
        mask = np.zeros((h, w), np.float32)
        for side, ch, visible in self.letters:
            x0, _, x1, _ = font.getbbox(ch, stroke_width=stroke)
            x = visible - x1 if side == "left" else w - visible - x0
            mask = np.maximum(mask, _text_mask(ch, font, [0.0], (x, origin[1]), size, stroke))
        if self.line is not None:
            where, line, visible, shift = self.line
            _, t, _, b = font.getbbox(line, stroke_width=stroke)
            y = visible - b if where == "above" else h - visible - t
            mask = np.maximum(mask, _text_mask(line, font, [0.0], (origin[0] + shift * w, y), size, stroke))
        return mask

    def bend(self, img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        map_y = ys + np.float32(self.wave) * np.sin(xs * np.float32(2 * math.pi / self.period) + np.float32(self.phase))
        return cv2.remap(img, xs, map_y.astype(np.float32), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _scene_colors(
    rng: np.random.Generator, scene: Scene, ink: np.ndarray, paper: np.ndarray, spread: float, h: int, w: int
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray | None]:
    """(ink, paper, spread, photo background or None): a real crop's colours and a photograph's
    texture, keeping the text at least 40/255 in luminance from every background pixel."""
    if scene.palette is not None and rng.random() < scene.palette_ratio:
        real_ink, real_paper = scene.palette.sample(rng)
        contrast = abs(_luminance(real_paper) - _luminance(real_ink))
        if contrast >= 40:
            ink, paper = real_ink, real_paper
            spread = min(spread, contrast - 40)
    photo = None
    if scene.photos is not None and rng.random() < scene.photo_ratio:
        amp = min(rng.uniform(20, 70), abs(_luminance(paper) - _luminance(ink)) - 40)
        patch = scene.photos.patch(rng, h, w)
        if patch is not None and amp > 5:
            lum = patch @ np.float32([0.299, 0.587, 0.114])
            dev = float(np.abs(lum - lum.mean()).max())
            # the texture's luminance swings at most amp around the paper; a near-flat patch is not
            # blown up to reach it (its colour cast, not its luminance, would grow without bound and
            # clip the whole crop, text included, to one flat colour)
            gain = min(amp / max(dev, 1e-3), MAX_PHOTO_GAIN)
            photo = (paper + (patch - lum.mean()) * np.float32(gain)).astype(np.float32)
    return ink, paper, spread, photo


def _render_plain(text: str, font_path: str, rng: np.random.Generator, *, height: int, channels: int, shaped: bool = False) -> np.ndarray:
    size = int(rng.integers(max(8, int(height * 0.8)), int(height * 1.6) + 1))
    font = _load_font(font_path, size, shaped)
    xs, left, v_top, text_w, line_h = _line_box(text, font, 0, 0.0)
    pad_l, pad_r = (int(line_h * rng.uniform(0.0, 0.4)) + 1 for _ in range(2))
    pad_t, pad_b = (int(line_h * rng.uniform(0.0, 0.2)) + 1 for _ in range(2))
    w, h = text_w + pad_l + pad_r, line_h + pad_t + pad_b
    mask = _text_mask(text, font, xs, (pad_l - left, pad_t - v_top), (w, h), 0)
    paper, ink = rng.uniform(215, 255), rng.uniform(0, 60)
    img = paper + (ink - paper) * mask
    if rng.random() < 0.3:  # scanner blur
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 0.7) * size / height)
    if rng.random() < 0.3:
        img = img + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(rng.uniform(1, 5))
    out = resize_to_height(np.clip(img + 0.5, 0, 255).astype(np.uint8), height, min_width=1)
    return out if channels == 1 else cv2.cvtColor(out, cv2.COLOR_GRAY2RGB)


STYLES = ("scene", "dot-matrix")


@functools.cache
def _dot_matrix_fonts() -> tuple[str, ...]:
    """The monospace faces dot-matrix glyphs are sampled from: matplotlib's bundled DejaVu Sans
    Mono (regular and bold), so every machine draws the same dots."""
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return tuple(str(folder / f) for f in ("DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf"))


def render_dot_matrix(text: str, rng: np.random.Generator, *, height: int = 32, channels: int = 3) -> np.ndarray:
    """Render ``text`` as a dot-matrix display or print: uint8 ``(height, w, 3)`` RGB (or ``(height, w)``).

    The glyphs are a monospace font drawn without anti-aliasing at 9-11 px, so each pixel is one
    cell of the matrix; a lit cell becomes a round dot. Half are LED signs (amber, red, green or
    white dots with a glow over a dark panel whose unlit dots show faintly), half dot-matrix
    print (dark dots on paper). Then a little blur and sensor noise.
    """
    font = ImageFont.truetype(_dot_matrix_fonts()[int(rng.integers(2))], int(rng.integers(9, 12)))
    left, top, right, bottom = font.getbbox(text)
    grid_img = Image.new("1", (right - left + 2, bottom - top + 2), 0)
    draw = ImageDraw.Draw(grid_img)
    draw.fontmode = "1"  # no anti-aliasing: one pixel, one dot
    draw.text((1 - left, 1 - top), text, fill=1, font=font)
    grid = np.asarray(grid_img, dtype=bool)  # (rows, cols)
    cell = int(rng.integers(4, 7))
    radius = cell * rng.uniform(0.28, 0.45)
    rows, cols = grid.shape
    h, w = rows * cell, cols * cell
    led = rng.random() < 0.5
    if led:
        panel = rng.uniform(0, 40, 3)
        ink = np.array([[255, 176, 0], [255, 40, 30], [60, 255, 90], [235, 235, 255]][int(rng.integers(4))], float)
        ink = ink * rng.uniform(0.75, 1.0)
        unlit = panel + rng.uniform(8, 30)
    else:
        panel = np.full(3, rng.uniform(190, 250)) - rng.uniform(0, 25, 3)
        ink = np.full(3, rng.uniform(10, 80))
        unlit = None
    canvas = np.empty((h, w, 3), np.float32)
    canvas[:] = panel
    centers = [(int(c * cell + cell / 2), int(r * cell + cell / 2)) for r in range(rows) for c in range(cols)]
    for (x, y), on in zip(centers, grid.ravel()):
        color = ink if on else unlit
        if color is not None:
            cv2.circle(canvas, (x, y), max(1, int(round(radius))), color.tolist(), -1, cv2.LINE_AA)
    if led:  # glow around the lit dots
        glow = cv2.GaussianBlur(canvas, (0, 0), cell * 0.6)
        canvas = np.maximum(canvas, 0.6 * glow)
    canvas = cv2.GaussianBlur(canvas, (0, 0), rng.uniform(0.3, 1.2))
    canvas += rng.normal(0, rng.uniform(2, 8), canvas.shape)
    margin = int(cell * rng.uniform(0.5, 2.0))
    canvas = cv2.copyMakeBorder(canvas, margin, margin, margin, margin, cv2.BORDER_CONSTANT, value=panel.tolist())
    img = np.clip(canvas, 0, 255).astype(np.uint8)
    img = resize_to_height(img, height)
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if channels == 1 else img


def encode_image(img: np.ndarray, image_format: str = "png") -> bytes:
    """uint8 gray or RGB image -> PNG (fast compression) or JPEG (quality 95) bytes."""
    bgr = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    if image_format == "png":
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    elif image_format in ("jpg", "jpeg"):
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    else:
        raise ValueError(f"unknown image format {image_format!r}; use png or jpg")
    if not ok:
        raise RuntimeError("image encoding failed")
    return buf.tobytes()


class WordRenderer:
    """Draws one word crop from a generator: its text first (``text``), then its font and rendering.

    The options are ``iter_samples``'s. ``renderer(rng) -> (image, label)`` makes every draw from
    ``rng`` in a fixed order, so a sample depends only on the generator's seed (and the fonts
    installed); ``renderer.text(rng)`` makes the first draws alone, and gives the same text
    (the in-loader dataset estimates a word's width from it before rendering it).
    ``blank_ratio``: share of crops drawn as a word would be but without its text (``render_word(blank=True)``),
    labelled ``""``: negatives, so a reader learns to answer nothing on a crop without text.
    """

    def __init__(
        self,
        *,
        alphabet: str | Alphabet = "alphanumeric",
        words: str | os.PathLike | Sequence[str] | None = None,
        fonts: Sequence[str | os.PathLike] | None = None,
        height: int = 32,
        channels: int = 3,
        word_ratio: float = 0.7,
        max_length: int = 16,
        plain_ratio: float = 0.0,
        style: str = "scene",
        pattern_ratio: float = 0.0,
        scene: Scene | None = None,
        shaping: float = 0.0,
        blank_ratio: float = 0.0,
    ) -> None:
        if not 0.0 <= plain_ratio <= 1.0:
            raise ValueError(f"plain_ratio must be in [0, 1], got {plain_ratio}")
        if not 0.0 <= blank_ratio <= 1.0:
            raise ValueError(f"blank_ratio must be in [0, 1], got {blank_ratio}")
        if blank_ratio > 0 and style == "dot-matrix":
            raise ValueError("blank_ratio is for the scene style, not dot-matrix")
        self.blank_ratio = blank_ratio
        check_shaping(shaping)
        self.shaping = shaping
        if style not in STYLES:
            raise ValueError(f"style must be one of {', '.join(STYLES)}, got {style!r}")
        alphabet = Alphabet.resolve(alphabet)
        word_list = list(words) if isinstance(words, (list, tuple)) else load_words(words)
        self.source = TextSource(alphabet, word_list, word_ratio=word_ratio, max_length=max_length, pattern_ratio=pattern_ratio)
        self.height, self.channels, self.plain_ratio, self.style, self.scene = height, channels, plain_ratio, style, scene
        self.families: list[list[str]] = []
        if style != "dot-matrix":
            charset = self.source.all + (" " if self.source.space else "")
            self.families = font_families(find_fonts(fonts, charset))

    def text(self, rng: np.random.Generator) -> str:
        """The sample's text: the first draws from ``rng``."""
        return self.source(rng)

    def __call__(self, rng: np.random.Generator) -> tuple[np.ndarray, str]:
        """uint8 ``(height, w, 3)`` RGB (or ``(height, w)``) and its label, every draw from ``rng``."""
        text = self.source(rng)
        if self.style == "dot-matrix":
            return render_dot_matrix(text, rng, height=self.height, channels=self.channels), text
        family = self.families[int(rng.integers(len(self.families)))]
        font = family[int(rng.integers(len(family)))]
        plain = self.plain_ratio > 0 and rng.random() < self.plain_ratio  # no draw at 0: older seeds render as before
        shaped = self.shaping > 0 and rng.random() < self.shaping  # likewise
        blank = self.blank_ratio > 0 and rng.random() < self.blank_ratio  # likewise
        img = render_word(text, font, rng, height=self.height, channels=self.channels, plain=plain and not blank,
                          scene=self.scene, shaped=shaped, blank=blank)
        return img, "" if blank else text


def iter_samples(
    count: int,
    *,
    seed: int = 0,
    alphabet: str | Alphabet = "alphanumeric",
    words: str | os.PathLike | Sequence[str] | None = None,
    fonts: Sequence[str | os.PathLike] | None = None,
    height: int = 32,
    channels: int = 3,
    word_ratio: float = 0.7,
    max_length: int = 16,
    plain_ratio: float = 0.0,
    style: str = "scene",
    pattern_ratio: float = 0.0,
    scene: Scene | None = None,
    shaping: float = 0.0,
) -> Iterator[tuple[np.ndarray, str]]:
    """Yield ``count`` (image, label) pairs; sample ``i`` is ``WordRenderer(...)(default_rng([seed, i]))``.

    ``plain_ratio``: the share of words rendered as printed/screen text (``render_word(plain=True)``)
    rather than as photographed scene text. ``style="dot-matrix"``: every word as an LED sign or
    dot-matrix print (``render_dot_matrix``; its glyphs come from matplotlib's bundled font, so
    the images are the same on every machine). ``pattern_ratio``: share of texts that are prices,
    phone numbers, web addresses, times, codes and brand-like compounds (``TextSource``).
    ``scene``: realism of photographed words (``Scene``; not for plain or dot-matrix words).
    ``shaping``: share of words laid out by libraqm (kerning and ligatures, as typeset text is)
    rather than glyph by glyph; 0 draws nothing, so older seeds render as before.
    """
    renderer = WordRenderer(
        alphabet=alphabet, words=words, fonts=fonts, height=height, channels=channels, word_ratio=word_ratio,
        max_length=max_length, plain_ratio=plain_ratio, style=style, pattern_ratio=pattern_ratio, scene=scene,
        shaping=shaping,
    )  # fmt: skip
    for i in range(count):
        yield renderer(np.random.default_rng([seed, i]))


def generate(
    out: str | os.PathLike,
    count: int,
    *,
    seed: int = 0,
    alphabet: str | Alphabet = "alphanumeric",
    words: str | os.PathLike | Sequence[str] | None = None,
    fonts: Sequence[str | os.PathLike] | None = None,
    height: int = 32,
    channels: int = 3,
    word_ratio: float = 0.7,
    max_length: int = 16,
    plain_ratio: float = 0.0,
    style: str = "scene",
    pattern_ratio: float = 0.0,
    scene: Scene | None = None,
    shaping: float = 0.0,
    image_format: str = "png",
    overwrite: bool = False,
    image_dir: str | os.PathLike | None = None,
) -> int:
    """Render ``count`` words into an LMDB at ``out`` (plus ``out/labels.txt``); returns the count.

    ``image_dir``: also write each image there as ``000000001.png`` ... (numbered like the LMDB
    keys) with a ``gt.txt`` of ``name<TAB>label`` lines, for inference demos and folder tools.
    """
    if count < 1:
        raise ValueError(f"count must be positive, got {count}")
    labels: list[str] = []
    if image_dir is not None:
        Path(image_dir).mkdir(parents=True, exist_ok=True)

    def samples() -> Iterator[tuple[bytes, str]]:
        for img, text in iter_samples(
            count, seed=seed, alphabet=alphabet, words=words, fonts=fonts, height=height,
            channels=channels, word_ratio=word_ratio, max_length=max_length, plain_ratio=plain_ratio, style=style,
            pattern_ratio=pattern_ratio, scene=scene, shaping=shaping,
        ):  # fmt: skip
            labels.append(text)
            data = encode_image(img, image_format)
            if image_dir is not None:
                (Path(image_dir) / f"{len(labels):09d}.{image_format}").write_bytes(data)
            yield data, text

    written = write_lmdb(out, samples(), overwrite=overwrite)
    (Path(out) / "labels.txt").write_text("".join(t + "\n" for t in labels), encoding="utf-8")
    if image_dir is not None:
        gt = "".join(f"{i:09d}.{image_format}\t{t}\n" for i, t in enumerate(labels, 1))
        (Path(image_dir) / "gt.txt").write_text(gt, encoding="utf-8")
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Render synthetic word images into an LMDB.")
    p.add_argument("--out", required=True, help="output LMDB folder")
    p.add_argument("--count", type=int, required=True, help="number of word images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--words", help="word list, one per line (default: wordfreq English top 30k)")
    p.add_argument("--alphabet", default="alphanumeric", help="preset name or alphabet file")
    p.add_argument("--fonts", nargs="+", help="font files or folders (default: system + matplotlib fonts)")
    p.add_argument("--height", type=int, default=32)
    p.add_argument("--gray", action="store_true", help="store grayscale images")
    p.add_argument("--word-ratio", type=float, default=0.7, help="share of dictionary words (rest: random strings)")
    p.add_argument("--max-length", type=int, default=16)
    p.add_argument("--plain-ratio", type=float, default=0.0,
                   help="share of words rendered as printed/screen text (dark on white, upright, no photo effects)")
    p.add_argument("--style", default="scene", choices=STYLES,
                   help="scene: photographed and printed words in many fonts; dot-matrix: LED signs and dot-matrix print")
    p.add_argument("--pattern-ratio", type=float, default=0.0,
                   help="share of prices, phone numbers, web addresses, times, codes and brand-like compounds")
    p.add_argument("--shaping", type=float, default=0.0,
                   help="share of words laid out by libraqm (kerning, fi/fl ligatures), as typeset text is; the rest glyph by glyph")
    g = p.add_argument_group("photographic realism (scene style)")
    g.add_argument("--colors", help="text/background colour pairs of real crops (datasets/crop_colors.py writes them)")
    g.add_argument("--palette-ratio", type=float, default=0.6, help="share of words coloured from --colors")
    g.add_argument("--photos", nargs="+", help="photographs or folders of them, whose texture goes under the text "
                   "(e.g. /usr/share/backgrounds from gnome-backgrounds and mate-backgrounds)")  # fmt: skip
    g.add_argument("--photo-ratio", type=float, default=0.5, help="share of backgrounds cut from --photos")
    g.add_argument("--neighbors", type=float, default=0.0,
                   help="share of crops cut like a detector's: part of a neighbouring letter or line, or an edge, in the margin")
    g.add_argument("--curve", type=float, default=0.0, help="share of words bent along a wave")
    g.add_argument("--wide-margin", type=float, default=0.0, help="share of crops with a margin of up to 1.2 line heights at a side")
    p.add_argument("--format", default="png", choices=("png", "jpg"))
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--png-dir", help="also write the images to this folder, with a gt.txt (name<TAB>label)")
    a = p.parse_args(argv)
    start = time.perf_counter()
    try:
        scene = None
        if a.colors or a.photos or a.neighbors or a.curve or a.wide_margin:
            scene = Scene(
                palette=Palette.load(a.colors) if a.colors else None, photos=PhotoBackgrounds(a.photos) if a.photos else None,
                palette_ratio=a.palette_ratio, photo_ratio=a.photo_ratio, neighbors=a.neighbors, curve=a.curve,
                wide_margin=a.wide_margin,
            )  # fmt: skip
        n = generate(
            a.out, a.count, seed=a.seed, alphabet=a.alphabet, words=a.words, fonts=a.fonts, height=a.height,
            channels=1 if a.gray else 3, word_ratio=a.word_ratio, max_length=a.max_length, plain_ratio=a.plain_ratio,
            style=a.style, pattern_ratio=a.pattern_ratio, scene=scene, shaping=a.shaping, image_format=a.format, overwrite=a.overwrite, image_dir=a.png_dir,
        )  # fmt: skip
    except (ValueError, OSError) as e:
        print(f"synth_text: error: {e}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - start
    print(f"wrote {n} samples to {a.out} in {elapsed:.1f}s ({n / elapsed:.0f} words/s)")
    return 0

