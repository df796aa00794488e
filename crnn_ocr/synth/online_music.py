"""Music staves engraved inside the DataLoader's workers: a fresh engraving of every label each epoch.

    python tools/train.py --kind score --height 64 --max-width 1024 --alphabet data/music/vocabulary.txt \
        --data staves:runs/staves.json --val data/music/val --max-steps 20000

``staves:CONFIG.json`` names a JSON object (option names with ``_`` or ``-``):

* ``labels`` (required): where the token sequences come from, an LMDB folder in the standard
  layout whose labels are semantic token sequences (``datasets/synth_music.py``'s ``train``; its
  images are not read), or a text file of one sequence a line;
* ``count``: the source's samples per epoch, what ``--data-ratios`` draws from (default: one per label);
* ``seed``: the config's seed (two sources on the same labels need different ones);
* ``fonts``: Verovio music fonts to draw from (default all of ``VEROVIO_FONTS``);
* ``distort``: the share of staves given camera-like distortion (default 0.5);
* ``reclef``: the share of staves moved to a clef drawn uniformly from the ten (``move_to_clef``:
  notes by whole octaves to sit on the staff; default 0). The corpus is mostly treble and bass,
  and a model learns each clef's pitches only from staves in that clef;
* ``rekey``: the share moved to a key signature drawn uniformly from the fifteen (``move_to_key``:
  notes stay on their lines and spaces and take the new key's alterations; default 0);
* ``accidentals``: the share of staves given extra accidentals (``add_accidentals``: about
  ``accidental_rate`` of their notes, default 0.2, change alteration, so a sharp, flat or natural
  is drawn where the key implied none; default 0). Only about 3% of the corpus's notes show an
  accidental, and a model reads a drawn accidental only as well as it has seen them.

A moved label that leaves the alphabet or is not valid music is engraved as it was.

Relative paths are read from the config file's folder. Height is the run's ``--height``; staves
are engraved gray (``--channels 3`` repeats the gray).

Labels: at open, each label is split into tokens and checked as ``LmdbDataset`` checks its
labels (tokens outside the run's alphabet: skipped and counted, a ``ValueError`` with
``bad_labels="raise"``), and must be valid music (``validate_semantic``) and need no more CTC
frames than ``max_width`` gives; ``summary()`` counts what was skipped. Epoch ``e`` draws its
labels in a seeded order (``default_rng([run seed, config seed, e, _ORDER_KEY])``): sample ``i`` is
label ``order[i mod n]``, every label once per ``n`` samples and a different subset each epoch
when ``count`` is less than ``n``.

Seeding: sample ``i`` of epoch ``e`` is engraved from ``default_rng([run seed, config seed, e, i])``
(``Engraving.random``, then whether to distort and ``camera_distort``), then augmented like an LMDB
sample, the augmentation seeded from the same generator. A sample depends on neither the number
of workers nor where a run was resumed. A staff that Verovio cannot engrave, or whose engraving
disagrees with its label (``check_agreement``: e.g. a second system), comes back as ``None``,
which the batch drops and the trainer counts as unreadable, like an LMDB image that does not
decode; ``summary()`` adds the count of such staves read in its own process.

Widths: the batch sampler buckets by width before anything is engraved. A label's width is
estimated from its number of tokens (``_WIDTH_FIT``) and clipped to the front-end's ``max_width``,
which also squeezes wider engravings (as ``LmdbDataset`` images are); an engraving too narrow for
its label's CTC frames is stretched to the narrowest width that fits. One Verovio toolkit per
process, made on first use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from torch.utils.data import Dataset

from crnn_ocr.alphabet import Alphabet, ctc_min_frames
from crnn_ocr.data.lmdb_format import NUM_SAMPLES_KEY, label_key, shared_env
from crnn_ocr.data.sources import config_options, generated_sample, read_config, register_source
from crnn_ocr.frontend import Frontend
from crnn_ocr.music import CLEFS, split_tokens, validate_semantic
from crnn_ocr.preprocessing import DEFAULT_MIN_WIDTH
from crnn_ocr.synth.music import (
    VEROVIO_FONTS,
    Engraver,
    Engraving,
    add_accidentals,
    camera_distort,
    check_agreement,
    move_to_clef,
    move_to_key,
    rasterize,
)

# engraved width / height ~ per_token * tokens + base: least squares over 300 labels of
# datasets/synth_music.py's generator (seed 11: 70% corpus excerpts, 30% random melodies, 5 to 47
# tokens), each engraved 3 times by Engraving.random at height 64. Correlation 0.6, as good as a
# label can say: two engravings of one label correlate 0.46 (spacing, margins and font vary)
_WIDTH_FIT = (0.2323, 0.9295)
_ORDER_KEY = 2**32 - 1  # the last seed word of an epoch's label order: never a sample index
_SKIPS = (  # (stats key, what summary() says) of a label skipped at open
    ("empty_label", "empty"),
    ("unknown_symbols", "with tokens outside the alphabet"),
    ("invalid_music", "not valid music"),
    ("too_long", "too long for max_width"),
)


@dataclass
class StavesConfig:
    """What a ``staves:CONFIG.json`` file says (see the module docstring)."""

    labels: str
    count: int | None = None
    seed: int = 0
    fonts: list[str] = field(default_factory=lambda: list(VEROVIO_FONTS))
    distort: float = 0.5
    reclef: float = 0.0
    rekey: float = 0.0
    accidentals: float = 0.0
    accidental_rate: float = 0.2
    source: str = field(default="<config>", repr=False)  # the file, for messages

    @classmethod
    def load(cls, path: str | os.PathLike) -> StavesConfig:
        """Read a config file; ``ValueError`` in one line naming the file and what is wrong."""
        d = read_config("staves", path, "with 'labels' and optional count, seed, fonts, distort, reclef, rekey, "
                        "accidentals, accidental_rate")
        return cls.from_dict(d, base=Path(path).parent, source=f"staves:{path}")

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, base: str | os.PathLike = ".", source: str = "<config>") -> StavesConfig:
        """From a dict of options (``-`` or ``_`` in names); a relative ``labels`` is taken from ``base``."""
        d = config_options(d, (f.name for f in fields(cls) if f.name != "source"), source, "height is the run's --height")
        if not isinstance(d.get("labels"), str) or not d["labels"]:
            raise ValueError(f"{source}: 'labels' must name an LMDB folder or a text file of token sequences, "
                             f"got {d.get('labels')!r}")
        count = d.get("count")
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or not 1 <= count < _ORDER_KEY):
            raise ValueError(f"{source}: 'count' must be a positive integer (samples per epoch), got {count!r}")
        for name, default in (("distort", 0.5), ("reclef", 0.0), ("rekey", 0.0), ("accidentals", 0.0),
                              ("accidental_rate", 0.2)):
            share = d.get(name, default)
            if not isinstance(share, (int, float)) or isinstance(share, bool) or not 0 <= share <= 1:
                raise ValueError(f"{source}: '{name}' must be a fraction in [0, 1], got {share!r}")
            d[name] = float(share)
        fonts = d.get("fonts", list(VEROVIO_FONTS))
        fonts = [fonts] if isinstance(fonts, str) else fonts
        if not isinstance(fonts, list) or not fonts or any(f not in VEROVIO_FONTS for f in fonts):
            raise ValueError(f"{source}: 'fonts' must be a list of Verovio fonts ({', '.join(VEROVIO_FONTS)}), got {d.get('fonts')!r}")
        d["fonts"] = list(fonts)
        d["labels"] = str(Path(base) / d["labels"])
        return cls(**d, source=source)


def read_token_labels(path: str | os.PathLike, source: str = "<config>") -> list[str]:
    """The labels at ``path``: a standard-layout LMDB folder's (in order; missing or non-UTF-8
    entries give ``""``, skipped as empty) or a text file's non-blank lines. ``ValueError`` naming
    ``source`` and the path when there is none to read."""
    path = os.fspath(path)
    if os.path.isdir(path):
        try:
            env = shared_env(path)
        except Exception as e:  # lmdb.Error, OSError
            raise ValueError(f"{source}: 'labels' {path}: cannot open as LMDB: {e}") from None
        with env.begin() as txn:
            raw = txn.get(NUM_SAMPLES_KEY)
            if raw is None or not raw.strip().isdigit():
                raise ValueError(f"{source}: 'labels' {path}: not a dataset LMDB (no valid 'num-samples' key)")
            labels = []
            for index in range(1, int(raw) + 1):
                buf = txn.get(label_key(index))
                try:
                    labels.append("" if buf is None else bytes(buf).decode("utf-8"))
                except UnicodeDecodeError:
                    labels.append("")
        return labels
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{source}: 'labels' {path}: cannot read: {getattr(e, 'strerror', None) or e}") from None
    return [line for line in text.splitlines() if line.strip()]


class EngravedStavesDataset(Dataset):
    """``count`` staves per epoch, engraved when read (in the DataLoader's workers) from the config's labels.

    Items are ``LmdbDataset``'s: ``dict(image=(C, height, w) float tensor, ids, label, width)``,
    the image engraved at ``frontend.height``, squeezed to ``max_width`` and augmented as
    ``frontend`` (an image front-end) trains, the label as ``alphabet`` spells it; ``None`` for a
    staff that did not engrave or disagrees with its label. Sample ``i`` of epoch ``e``
    (``set_epoch``) is drawn from ``default_rng([seed, config.seed, e, i])``, ``seed`` being the
    run's; see the module docstring. ``.widths`` is a placeholder: the sampler asks
    ``epoch_widths`` each epoch. ``.stats`` counts the labels kept and skipped at open.
    """

    def __init__(
        self, config: StavesConfig, alphabet: Alphabet, frontend: Frontend, *, augment: Any = False, seed: int = 0,
        min_frames_fn: Any = None, bad_labels: str = "skip", **_task_options: Any,
    ) -> None:  # fmt: skip
        if frontend.kind != "image":
            raise ValueError(f"{config.source}: engraves staff images; this run reads {frontend.kind} inputs")
        if bad_labels not in ("skip", "raise"):
            raise ValueError(f"bad_labels must be 'skip' or 'raise', got {bad_labels!r}")
        try:  # here, not in the workers' first read
            import cairosvg  # noqa: F401
            import verovio  # noqa: F401
        except (ImportError, OSError) as e:  # OSError: the system cairo library is missing
            raise ValueError(f"{config.source}: engraving needs verovio and cairosvg (pip install -e '.[music]'): {e}") from None
        self.config, self.alphabet, self.frontend = config, alphabet, frontend
        self.seed, self.epoch = seed, 0
        self.min_frames_fn, self.bad_labels = min_frames_fn, bad_labels
        labels = read_token_labels(config.labels, config.source)
        self.tokens: list[tuple[str, ...]] = []  # kept labels, as Verovio engraves them
        self.ids: list[list[int]] = []  # the same, as the alphabet encodes them
        self.stats = {"total": len(labels), "kept": 0, "skipped": 0, **{key: 0 for key, _ in _SKIPS}}
        too_long_at = None if min_frames_fn is None or frontend.max_width is None else min_frames_fn(frontend.max_width)
        for index, label in enumerate(labels, 1):
            reason = self._check(index, label, too_long_at)
            if reason is not None:
                self.stats[reason] += 1
        self.stats["kept"] = len(self.tokens)
        self.stats["skipped"] = len(labels) - len(self.tokens)
        if not self.tokens:
            raise ValueError(f"{config.source}: no usable labels in {config.labels} ({self._skipped()})")
        self.count = config.count if config.count is not None else len(self.tokens)
        lengths = np.array([len(t) for t in self.tokens], dtype=np.float64)
        per_token, base = _WIDTH_FIT
        widths = np.round(frontend.height * (per_token * lengths + base) * getattr(frontend, "width_scale", 1.0))
        self._label_widths = np.clip(widths, DEFAULT_MIN_WIDTH, frontend.max_width or np.inf).astype(np.int64)
        self.widths = np.zeros(self.count, dtype=np.int32)  # placeholder: epoch_widths gives them
        self.failures = {"not_engraved": 0, "disagreeing": 0}  # read in this process
        self._augment_spec = augment
        self._augment: Any = None
        self._engraver: Engraver | None = None
        self._pid: int | None = None  # process that built _augment and _engraver
        self._order: tuple[int, np.ndarray] | None = None  # (epoch, its label order)

    def _check(self, index: int, label: str, too_long_at: int | None) -> str | None:
        """Keep label ``index`` (1-based) or say why not (a ``_SKIPS`` key)."""
        tokens = split_tokens(label)
        if not tokens:
            self._bad_label(index, label, "empty label")
            return "empty_label"
        ids = self.alphabet.try_encode(tokens)
        if ids is None:
            self._bad_label(index, label, None)
            return "unknown_symbols"
        if not ids:
            self._bad_label(index, label, "empty label")
            return "empty_label"
        if validate_semantic(tokens):
            return "invalid_music"
        if too_long_at is not None and ctc_min_frames(ids) > too_long_at:
            return "too_long"
        self.tokens.append(tuple(tokens))
        self.ids.append(ids)
        return None

    def _bad_label(self, index: int, label: str, why: str | None) -> None:
        """With ``bad_labels="raise"``: the ``ValueError`` naming the labels and label ``index``."""
        if self.bad_labels != "raise":
            return
        if why is None:
            try:
                self.alphabet.encode(label)
            except ValueError as e:
                why = str(e)
        raise ValueError(f"{self.config.source}: {self.config.labels}: label {index}: {why}")

    def _rng(self, epoch: int, i: int) -> np.random.Generator:
        return np.random.default_rng([self.seed % 2**32, self.config.seed, epoch, i])

    def label_order(self, epoch: int) -> np.ndarray:
        """Epoch ``epoch``'s order of the kept labels: sample ``i`` is label ``order[i % n]``."""
        if self._order is None or self._order[0] != epoch:
            rng = np.random.default_rng([self.seed % 2**32, self.config.seed, epoch, _ORDER_KEY])
            self._order = (epoch, rng.permutation(len(self.tokens)))
        return self._order[1]

    def epoch_widths(self, epoch: int, indices: np.ndarray) -> np.ndarray:
        """Estimated input widths of samples ``indices`` in ``epoch``, from their labels' token counts (int64)."""
        order = self.label_order(epoch)
        return self._label_widths[order[np.asarray(indices, dtype=np.int64) % len(order)]]

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's labels and engravings (call before the epoch's DataLoader starts its workers)."""
        self.epoch = epoch

    def _skipped(self) -> str:
        """E.g. ``"skipped 3 of 100: 1 with tokens outside the alphabet, 2 not valid music"``."""
        parts = [f"{self.stats[key]} {what}" for key, what in _SKIPS if self.stats[key]]
        head = f"skipped {self.stats['skipped']} of {self.stats['total']}"
        return f"{head}: {', '.join(parts)}" if parts else head

    def summary(self) -> str:
        """The labels kept and skipped at open, and the staves that failed in this process (one line)."""
        text = (f"{self.count} staves per epoch engraved in the loader from {self.stats['kept']} labels of "
                f"{self.config.labels} ({self._skipped()}); {len(self.config.fonts)} fonts, distort {self.config.distort:g}")
        moves = [f"{name} {share:g}" for name, share in (("reclef", self.config.reclef), ("rekey", self.config.rekey),
                                                          ("accidentals", self.config.accidentals)) if share]
        if moves:
            text += ", " + ", ".join(moves)
        if any(self.failures.values()):
            text += (f"; read in this process: {self.failures['not_engraved']} not engraved, "
                     f"{self.failures['disagreeing']} disagreeing with their label")
        return text

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return f"EngravedStavesDataset({self.config.source!r}, {len(self)} samples, {self.frontend!r})"

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_augment"], state["_engraver"], state["_pid"] = None, None, None  # rebuilt in the worker process
        return state

    def moved_label(self, epoch: int, i: int, k: int) -> tuple[tuple[str, ...], list[int]]:
        """Label ``k`` as sample ``i`` of ``epoch`` draws it (tokens, ids): moved to another clef
        and key by the ``reclef`` and ``rekey`` shares (drawn from ``default_rng([run seed, config
        seed, epoch, i, 1])``), then given extra accidentals by the ``accidentals`` share (from
        ``default_rng([..., i, 2])``), so the engraving's generator is the same with or without them."""
        tokens, ids, cfg = self.tokens[k], self.ids[k], self.config
        if not (cfg.reclef or cfg.rekey or cfg.accidentals):
            return tokens, ids
        moved = list(tokens)
        if cfg.reclef or cfg.rekey:
            rng = np.random.default_rng([self.seed % 2**32, cfg.seed, epoch, i, 1])
            if rng.random() < cfg.reclef:
                moved = move_to_clef(moved, CLEFS[int(rng.integers(len(CLEFS)))])
            if rng.random() < cfg.rekey:
                moved = move_to_key(moved, int(rng.integers(-7, 8)))
            if moved != list(tokens) and (self.alphabet.try_encode(moved) is None or validate_semantic(moved)):
                moved = list(tokens)
        if cfg.accidentals:
            rng = np.random.default_rng([self.seed % 2**32, cfg.seed, epoch, i, 2])
            if rng.random() < cfg.accidentals:
                altered = add_accidentals(moved, rng, cfg.accidental_rate, self.alphabet)
                if not validate_semantic(altered):
                    moved = altered
        if moved == list(tokens):
            return tokens, ids
        new_ids = self.alphabet.try_encode(moved)
        if not new_ids:
            return tokens, ids
        return tuple(moved), new_ids

    def engrave(self, epoch: int, i: int) -> tuple[np.ndarray, list[int], np.random.Generator] | None:
        """Sample ``i`` of ``epoch`` before resizing and augmentation: (uint8 gray (height, w), its
        label's ids, its generator, drawn up to the augmentation's seed); None (and counted) when it failed."""
        if self._pid != os.getpid():  # first use in this process (or a forked worker)
            self._engraver, self._augment = Engraver(), self.frontend.augmentation(self._augment_spec)
            self._pid = os.getpid()
        assert self._engraver is not None
        k = int(self.label_order(epoch)[i % len(self.tokens)])
        (tokens, ids), rng = self.moved_label(epoch, i, k), self._rng(epoch, i)
        engraving = Engraving.random(rng, self.config.fonts)
        try:
            svg = self._engraver.svg(tokens, engraving)
            if check_agreement(tokens, svg):
                self.failures["disagreeing"] += 1
                return None
            img = rasterize(svg, self.frontend.height)  # (height, W) uint8
        except ValueError:  # Verovio rejected the MEI, cairosvg drew nothing (InvalidSequence is one)
            self.failures["not_engraved"] += 1
            return None
        if rng.random() < self.config.distort:
            img = camera_distort(img, rng)
        return img, ids, rng

    def __getitem__(self, i: int) -> dict | None:
        engraved = self.engrave(self.epoch, int(i))
        if engraved is None:
            return None
        img, ids, rng = engraved
        if getattr(self.frontend, "channels", 1) == 3:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
        return generated_sample(img, ids, self.alphabet, self.frontend, self._augment, rng, self.min_frames_fn)


def open_staves(arg: str, alphabet: Alphabet, frontend: Frontend, *, augment: Any = False, seed: int = 0,
                **options: Any) -> EngravedStavesDataset:
    """The ``staves:CONFIG.json`` training source (``crnn_ocr.data.sources``)."""
    return EngravedStavesDataset(StavesConfig.load(arg), alphabet, frontend, augment=augment, seed=seed, **options)


register_source("staves", open_staves)
