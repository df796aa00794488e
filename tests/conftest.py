"""Shared fixtures: tiny rendered word images and LMDBs, made in tmp_path."""

from __future__ import annotations

import importlib.util
import io
import os
import sys
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):  # pytest -n N: one thread per worker (before torch loads), or N workers oversubscribe the cores
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]

WORDS = ["cat", "dog", "sun", "tree", "bird", "fish", "moon", "star", "rain", "wind",
         "fire", "road", "book", "door", "milk", "salt", "gold", "ship", "lamp", "rock"]


def render_word(text: str, height: int = 32, size: int = 24) -> np.ndarray:
    """A clean black-on-white word in Pillow's built-in font: uint8 (H, W)."""
    font = ImageFont.load_default(size)
    x0, y0, x1, y1 = font.getbbox(text)
    img = Image.new("L", (x1 - x0 + 8, height), 255)
    ImageDraw.Draw(img).text((4 - x0, (height - (y1 - y0)) // 2 - y0), text, font=font, fill=0)
    return np.asarray(img)


def png_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def make_word_lmdb(path: Path, words: list[str]) -> Path:
    from crnn_ocr.data import write_lmdb

    write_lmdb(path, [(png_bytes(render_word(w)), w) for w in words])
    return path


@pytest.fixture
def word_lmdb(tmp_path: Path) -> Path:
    return make_word_lmdb(tmp_path / "words_lmdb", WORDS)


def require_engraving() -> None:
    """Skip unless verovio and cairosvg (with the system cairo library) import."""
    pytest.importorskip("verovio")
    try:
        import cairosvg  # noqa: F401
    except (ImportError, OSError) as e:  # OSError: libcairo2 missing
        pytest.skip(f"cairosvg unavailable: {e}")


def load_script(name: str, path: Path):
    """Import a script of tools/ or bench/ (files, not a package) by its path, once, registered
    under ``name`` for its dataclasses. No sys.path edit: the script may import the installed
    package, not its neighbours."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
