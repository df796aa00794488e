"""Synthetic words rendered inside the DataLoader's workers: training on them with no LMDB step.

    python tools/train.py --data runs/ic15 synth:runs/synth.json --data-ratios 0.3 0.7 --max-steps 20000

``synth:CONFIG.json`` names a JSON object with ``datasets/synth_text.py``'s options (its option
names with ``_`` or ``-``): ``count`` (required: the source's samples per epoch, what ``--data-ratios``
draws from), ``seed``, ``words``, ``alphabet`` (the texts' symbols; default the run's), ``fonts``,
``word_ratio``, ``max_length``, ``plain_ratio``, ``style``, ``pattern_ratio``, ``shaping``, ``colors``,
``palette_ratio``, ``photos``, ``photo_ratio``, ``neighbors``, ``curve``, ``wide_margin``; and one of its
own, ``blank_ratio``: the share of crops drawn as a word would be but without its text, labelled with
nothing (negatives: an LMDB cannot hold an empty label, and without them whether a reader answers
nothing on a text-free crop is left to chance). Relative paths are read from the config file's
folder. Height and colour are the run's (``--height``, ``--channels``), so the words are rendered
at the model's input size.

Seeding: sample ``i`` of epoch ``e`` is rendered from ``default_rng([run seed, config seed, e, i])``
(``WordRenderer``: its text first, then its font and rendering), then augmented like an LMDB
sample, the augmentation seeded from the same generator. Every epoch draws fresh words; a sample
depends on neither the number of workers nor where a run was resumed, so a resumed run reads the
same samples as an uninterrupted one. Two sources with the same options need different ``seed`` s.

Widths: the batch sampler buckets by width before anything is rendered. ``epoch_widths`` draws each
sample's text (the generator's first draws, cheap) and estimates its rendered width from its length
(a per-style line fitted to rendered words); the sampler asks for the widths of the samples an
epoch draws, so synthetic words are bucketed with each other and with LMDB samples of similar widths.
A rendered word too narrow for its label's CTC frames is stretched to the narrowest width that fits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from crnn_ocr.alphabet import Alphabet
from crnn_ocr.data.sources import config_options, generated_sample, read_config, register_source
from crnn_ocr.frontend import Frontend
from crnn_ocr.preprocessing import DEFAULT_MIN_WIDTH
from crnn_ocr.synth.text import STYLES, Palette, PhotoBackgrounds, Scene, WordRenderer

# rendered width / height ~ per_char * len(text) + base (fitted on 150 words each at height 32)
_WIDTH_FIT = {"scene": (0.343, 0.311), "plain": (0.332, 0.521), "dot-matrix": (0.440, 0.595)}
_PATH_KEYS = ("words", "colors")
_PATH_LIST_KEYS = ("fonts", "photos")


@dataclass
class SynthConfig:
    """What a ``synth:CONFIG.json`` file says: ``datasets/synth_text.py``'s options (see the module docstring)."""

    count: int
    seed: int = 0
    alphabet: str | None = None
    words: str | None = None
    fonts: list[str] | None = None
    word_ratio: float = 0.7
    max_length: int = 16
    plain_ratio: float = 0.0
    style: str = "scene"
    pattern_ratio: float = 0.0
    shaping: float = 0.0
    colors: str | None = None
    palette_ratio: float = 0.6
    photos: list[str] | None = None
    photo_ratio: float = 0.5
    neighbors: float = 0.0
    curve: float = 0.0
    wide_margin: float = 0.0
    blank_ratio: float = 0.0
    source: str = field(default="<config>", repr=False)  # the file, for messages

    @classmethod
    def load(cls, path: str | os.PathLike) -> SynthConfig:
        """Read a config file; ``ValueError`` in one line naming the file and what is wrong."""
        d = read_config("synth", path, "of synth_text.py options")
        return cls.from_dict(d, base=Path(path).parent, source=f"synth:{path}")

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, base: str | os.PathLike = ".", source: str = "<config>") -> SynthConfig:
        """From a dict of options (``-`` or ``_`` in names); relative paths are taken from ``base``."""
        d = config_options(d, (f.name for f in fields(cls) if f.name != "source"), source,
                           "height and colour are the run's --height and --channels")
        if not isinstance(d.get("count"), int) or isinstance(d["count"], bool) or d["count"] < 1:
            raise ValueError(f"{source}: 'count' must be a positive integer (samples per epoch), got {d.get('count')!r}")
        blank = d.get("blank_ratio", 0.0)
        if not isinstance(blank, (int, float)) or isinstance(blank, bool) or not 0.0 <= blank <= 1.0:
            raise ValueError(f"{source}: 'blank_ratio' must be a number in [0, 1] (the share of text-free crops), got {blank!r}")
        if d.get("style", "scene") not in STYLES:
            raise ValueError(f"{source}: 'style' must be one of {', '.join(STYLES)}, got {d.get('style')!r}")
        if isinstance(d.get("alphabet"), str) and (Path(base) / d["alphabet"]).is_file():  # a file beside the config
            d["alphabet"] = str(Path(base) / d["alphabet"])
        for key in _PATH_KEYS:
            if d.get(key) is not None:
                d[key] = str(Path(base) / d[key])
        for key in _PATH_LIST_KEYS:
            if d.get(key) is not None:
                items = [d[key]] if isinstance(d[key], str) else list(d[key])
                d[key] = [str(Path(base) / p) for p in items]
        return cls(**d, source=source)

    def scene(self) -> Scene | None:
        """The photographic realism the options ask for (``synth_text.py`` builds it the same way)."""
        if not (self.colors or self.photos or self.neighbors or self.curve or self.wide_margin):
            return None
        return Scene(
            palette=Palette.load(self.colors) if self.colors else None, photos=PhotoBackgrounds(self.photos) if self.photos else None,
            palette_ratio=self.palette_ratio, photo_ratio=self.photo_ratio, neighbors=self.neighbors, curve=self.curve,
            wide_margin=self.wide_margin,
        )  # fmt: skip


class SynthWordDataset(Dataset):
    """``config.count`` synthetic word crops per epoch, rendered when read (in the DataLoader's workers).

    Items are ``LmdbDataset``'s: ``dict(image=(C, height, w) float tensor, ids, label, width)``,
    the image resized, squeezed and augmented as ``frontend`` (an image front-end) trains, the
    label as ``alphabet`` spells it. Sample ``i`` of epoch ``e`` (``set_epoch``) is drawn from
    ``default_rng([seed, config.seed, e, i])``, ``seed`` being the run's; see the module docstring.
    ``.widths`` is a placeholder: the sampler asks ``epoch_widths`` each epoch.
    """

    def __init__(
        self, config: SynthConfig, alphabet: Alphabet, frontend: Frontend, *, augment: Any = False, seed: int = 0,
        min_frames_fn: Any = None, **_task_options: Any,
    ) -> None:  # fmt: skip
        if frontend.kind != "image":
            raise ValueError(f"{config.source}: renders word images; this run reads {frontend.kind} inputs")
        self.config, self.alphabet, self.frontend = config, alphabet, frontend
        self.seed, self.epoch = seed, 0
        self.min_frames_fn = min_frames_fn
        self.renderer = WordRenderer(
            alphabet=config.alphabet or alphabet, words=config.words, fonts=config.fonts, height=frontend.height,
            channels=frontend.channels, word_ratio=config.word_ratio, max_length=config.max_length,
            plain_ratio=config.plain_ratio, style=config.style, pattern_ratio=config.pattern_ratio, scene=config.scene(),
            shaping=config.shaping, blank_ratio=config.blank_ratio,
        )  # fmt: skip
        source = self.renderer.source
        foreign = sorted(c for c in source.all + (" " if source.space else "") if alphabet.try_encode(c) is None)
        if foreign:
            raise ValueError(f"{config.source}: its alphabet draws symbols the run's alphabet lacks: {''.join(foreign)!r}")
        self.widths = np.zeros(config.count, dtype=np.int32)  # placeholder: epoch_widths gives them
        self._augment_spec = augment
        self._augment: Any = None
        self._pid: int | None = None  # process that built _augment

    def _rng(self, epoch: int, i: int) -> np.random.Generator:
        return np.random.default_rng([self.seed % 2**32, self.config.seed, epoch, i])

    def epoch_widths(self, epoch: int, indices: np.ndarray) -> np.ndarray:
        """Estimated input widths of samples ``indices`` in ``epoch``, from their texts' lengths (int64)."""
        lengths = np.array([len(self.renderer.text(self._rng(epoch, int(i)))) for i in indices], dtype=np.float64)
        if self.config.style == "dot-matrix":
            per_char, base = _WIDTH_FIT["dot-matrix"]
        else:
            p = self.config.plain_ratio
            per_char, base = ((1 - p) * a + p * b for a, b in zip(_WIDTH_FIT["scene"], _WIDTH_FIT["plain"]))
        fe = self.frontend
        widths = np.round(fe.height * (per_char * lengths + base) * getattr(fe, "width_scale", 1.0))
        return np.clip(widths, DEFAULT_MIN_WIDTH, fe.max_width or np.inf).astype(np.int64)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's words (call before the epoch's DataLoader starts its workers)."""
        self.epoch = epoch

    def summary(self) -> str:
        blank = f", {self.config.blank_ratio:.0%} of them text-free" if self.config.blank_ratio else ""
        return (f"{len(self)} synthetic words per epoch, rendered in the loader ({self.config.style}, "
                f"seed {self.config.seed}, {len(self.renderer.families) or 'dot-matrix'} font families{blank})")

    def __len__(self) -> int:
        return self.config.count

    def __repr__(self) -> str:
        return f"SynthWordDataset({self.config.source!r}, {len(self)} samples, {self.frontend!r})"

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_augment"], state["_pid"] = None, None  # rebuilt in the worker process
        return state

    def __getitem__(self, i: int) -> dict | None:
        rng = self._rng(self.epoch, int(i))
        img, text = self.renderer(rng)  # (height, w[, 3]) uint8; text "" for a text-free crop (blank_ratio)
        ids = self.alphabet.try_encode(text)
        if ids is None or (not ids and text):  # a blank crop trains the empty reading; separators alone do not
            return None
        if self._pid != os.getpid():  # first use in this process (or a forked worker)
            self._augment, self._pid = self.frontend.augmentation(self._augment_spec), os.getpid()
        return generated_sample(img, ids, self.alphabet, self.frontend, self._augment, rng, self.min_frames_fn)


def open_synth(arg: str, alphabet: Alphabet, frontend: Frontend, *, augment: Any = False, seed: int = 0,
               **options: Any) -> SynthWordDataset:
    """The ``synth:CONFIG.json`` training source (``crnn_ocr.data.sources``)."""
    return SynthWordDataset(SynthConfig.load(arg), alphabet, frontend, augment=augment, seed=seed, **options)


register_source("synth", open_synth)
