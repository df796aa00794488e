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
rotation, perspective, blur, low resolution, noise and JPEG artefacts. Output depends
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
from PIL import Image, ImageDraw, ImageFont

from crnn_ocr.alphabet import Alphabet
from crnn_ocr.data import write_lmdb
from crnn_ocr.preprocessing import resize_to_height

DEFAULT_FONT = "<pillow-default>"
"""Stands for Pillow's built-in scalable font (``ImageFont.load_default(size)``)."""

SYSTEM_FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.fonts", "~/.local/share/fonts")
# Fallback/symbol/display fonts whose ASCII code points do not draw ordinary letters.
_EXCLUDED_FONTS = re.compile(
    r"LastResort|STIXNonUni|STIXSiz|Display|^cm[a-z]+10\.|Symbol|Dingbat|D050000L|Math|Nushu", re.IGNORECASE
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


@functools.lru_cache(maxsize=None)
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
def _load_font(path: str, size: int) -> ImageFont.FreeTypeFont:
    if path == DEFAULT_FONT:
        return ImageFont.load_default(size)
    return ImageFont.truetype(path, size, layout_engine=ImageFont.Layout.BASIC)


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

    def __init__(self, alphabet: Alphabet, words: Sequence[str], *, word_ratio: float = 0.7, max_length: int = 16) -> None:
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
        self.digits = "".join(sorted(c for c in chars if c in string.digits))
        self.letters = "".join(sorted(c for c in chars if c.isalpha()))
        self.punct = "".join(sorted(c for c in chars if not c.isalnum() and not c.isspace()))
        self.space = " " in chars
        self.all = "".join(sorted(c for c in chars if not c.isspace()))
        if not self.all:
            raise ValueError("the alphabet has no drawable characters")

    def __call__(self, rng: np.random.Generator) -> str:
        if rng.random() < self.word_ratio:
            word = self.words[int(rng.integers(len(self.words)))]
            variant = rng.choice(3, p=[0.4, 0.3, 0.3])  # scene text is often UPPER case
            cased = (word, word.title(), word.upper())[variant]
            return cased if _usable(cased, self.alphabet, self.max_length) else word
        return self._random_string(rng)

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
        l, t, r, b = font.getbbox(ch, stroke_width=stroke)
        if r > l:  # spaces have no ink
            left, top, right, bottom = min(left, x + l), min(top, t), max(right, x + r), max(bottom, b)
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
    text: str, font_path: str, rng: np.random.Generator, *, height: int = 32, channels: int = 3, plain: bool = False
) -> np.ndarray:
    """Render ``text`` as a word crop: uint8 ``(height, w, 3)`` RGB (or ``(height, w)`` for channels=1).

    Besides font, size, colours and background, a crop may get letter spacing, an outline in the
    ink colour (hollow letters), a soft drop shadow, a border line in the margin, rotation,
    perspective, blur, low-resolution resampling, noise and JPEG artefacts. The text keeps a
    luminance contrast of at least 70/255 against every background pixel before noise.

    ``plain``: a word from a printed page or a screen instead of a photo: near-black ink on
    near-white paper, the font's own spacing, upright, and at most a light scanner blur and noise.
    """
    if plain:
        return _render_plain(text, font_path, rng, height=height, channels=channels)
    size = int(rng.integers(max(8, int(height * 0.7)), int(height * 1.6) + 1))
    font = _load_font(font_path, size)
    stroke = 1 if size >= 28 and rng.random() < 0.15 else 0
    tracking = size * rng.uniform(-0.03, 0.25) if len(text) > 1 and rng.random() < 0.2 else 0.0
    xs, left, v_top, text_w, line_h = _line_box(text, font, stroke, tracking)

    angle = rng.uniform(-4, 4) if rng.random() < 0.4 else 0.0
    lift = math.ceil(text_w / 2 * abs(math.sin(math.radians(angle))))  # room so rotation never clips
    pad_l, pad_r = (int(line_h * rng.uniform(0.0, 0.35)) + 1 for _ in range(2))
    pad_t, pad_b = (int(line_h * rng.uniform(0.0, 0.25)) + lift + 1 for _ in range(2))
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

    spread = float(rng.choice([0.0, 20.0, 35.0]))  # background luminance variation
    gap = float(rng.choice([70.0, 100.0, 100.0])) + spread
    bg_lum, fg_lum = _pick_luminances(rng, gap)
    paper, ink = _color_with_luminance(rng, bg_lum, chroma=70), _color_with_luminance(rng, fg_lum, chroma=90)
    if abs(_luminance(paper) - _luminance(ink)) < gap:  # tint clipping ate the contrast: use grays
        paper, ink = np.full(3, bg_lum), np.full(3, fg_lum)
    img = _background(rng, h, w, paper, spread)  # (h, w, 3)
    if rng.random() < 0.15:  # soft drop shadow, part of the way from paper to ink
        dx, dy = (int(v) for v in rng.integers(-3, 4, size=2))
        shadow = cv2.GaussianBlur(np.roll(mask, (dy, dx), axis=(0, 1)), (0, 0), rng.uniform(0.5, 2.0))
        shade = paper + (ink - paper) * rng.uniform(0.3, 0.6)
        img = img * (1.0 - shadow[:, :, None]) + shade.astype(np.float32) * shadow[:, :, None]
    if rng.random() < 0.1 and (pad_t > 2 or pad_b > 2):  # a sign border or underline in the margin
        y = int(rng.integers(0, max(1, pad_t - 1))) if pad_t > pad_b else h - 1 - int(rng.integers(0, max(1, pad_b - 1)))
        img = np.array(img, dtype=np.float32)
        img[y] = ink
    img = img * (1.0 - mask[:, :, None]) + ink.astype(np.float32) * mask[:, :, None]

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


def _render_plain(text: str, font_path: str, rng: np.random.Generator, *, height: int, channels: int) -> np.ndarray:
    size = int(rng.integers(max(8, int(height * 0.8)), int(height * 1.6) + 1))
    font = _load_font(font_path, size)
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


@functools.lru_cache(maxsize=None)
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
) -> Iterator[tuple[np.ndarray, str]]:
    """Yield ``count`` (image, label) pairs; sample ``i`` depends only on ``(seed, i)`` and the fonts.

    ``plain_ratio``: the share of words rendered as printed/screen text (``render_word(plain=True)``)
    rather than as photographed scene text. ``style="dot-matrix"``: every word as an LED sign or
    dot-matrix print (``render_dot_matrix``; its glyphs come from matplotlib's bundled font, so
    the images are the same on every machine).
    """
    if not 0.0 <= plain_ratio <= 1.0:
        raise ValueError(f"plain_ratio must be in [0, 1], got {plain_ratio}")
    if style not in STYLES:
        raise ValueError(f"style must be one of {', '.join(STYLES)}, got {style!r}")
    alphabet = Alphabet.resolve(alphabet)
    word_list = list(words) if isinstance(words, (list, tuple)) else load_words(words)
    source = TextSource(alphabet, word_list, word_ratio=word_ratio, max_length=max_length)
    if style == "dot-matrix":
        for i in range(count):
            rng = np.random.default_rng([seed, i])
            text = source(rng)
            yield render_dot_matrix(text, rng, height=height, channels=channels), text
        return
    charset = source.all + (" " if source.space else "")
    families = font_families(find_fonts(fonts, charset))
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        text = source(rng)
        family = families[int(rng.integers(len(families)))]
        font = family[int(rng.integers(len(family)))]
        plain = plain_ratio > 0 and rng.random() < plain_ratio  # no draw at 0: older seeds render as before
        yield render_word(text, font, rng, height=height, channels=channels, plain=plain), text


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
    p.add_argument("--format", default="png", choices=("png", "jpg"))
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--png-dir", help="also write the images to this folder, with a gt.txt (name<TAB>label)")
    a = p.parse_args(argv)
    start = time.perf_counter()
    try:
        n = generate(
            a.out, a.count, seed=a.seed, alphabet=a.alphabet, words=a.words, fonts=a.fonts, height=a.height,
            channels=1 if a.gray else 3, word_ratio=a.word_ratio, max_length=a.max_length, plain_ratio=a.plain_ratio,
            style=a.style, image_format=a.format, overwrite=a.overwrite, image_dir=a.png_dir,
        )  # fmt: skip
    except (ValueError, OSError) as e:
        print(f"synth_text: error: {e}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - start
    print(f"wrote {n} samples to {a.out} in {elapsed:.1f}s ({n / elapsed:.0f} words/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
