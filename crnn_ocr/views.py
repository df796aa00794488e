"""Test-time views: read an image several ways and keep the reading the views agree on.

A crop is read as the model's front-end prepares it and as a few variations of it: stretched
or squeezed in width (more or fewer output frames per glyph), a border added (a tight crop made
looser), rows trimmed (a loose crop made tighter), columns added at the sides. Real word crops
vary in all of these with the detector that cut them. Every view's decoder reading is a
candidate; each candidate's exact CTC log-likelihood (forward algorithm, all alignments) is
computed under every view, and the candidate with the highest mean wins: the product of the
views' distributions over labellings, which needs no alignment between views of different
lengths. With a lexicon, beam search or a language model the candidates are what that decoder
reads from each view; the vote between them is acoustic.

    rec = load_recognizer("english")
    rec.read_views(["word.png"])               # DEFAULT_VIEWS: ten readings of each image, one answer
    python tools/infer.py --image crops/ --views

The result's ``score`` is the winner's mean log-likelihood over the views (its ``confidence``,
``exp(score)``, a geometric mean of the views' probabilities) and its ``spans`` are its best
alignment in the first view (the front-end's own preparation), so ``Recognizer.frame_to_columns``
maps them on that view's width as for a plain reading. Measured on the English model's IIIT5K
dev crops: 89.6% -> 91.6%, its held-out test crops 86.9% -> 89.2% (BENCHMARKS.md, "Test-time
views"); it costs one forward pass per view. crnn_ocr's image models (``ImageFrontend``) only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from crnn_ocr.decoding import DecodeResult, batch_ctc_log_likelihood, viterbi_align
from crnn_ocr.preprocessing import resize_to_height

if TYPE_CHECKING:  # the front-end module builds augmentations, and augmentation draws views: no runtime import
    from crnn_ocr.frontend import ImageFrontend

MIN_TRIMMED_ROWS = 8  # a trim that would leave fewer rows is not made (the view is left out)


@dataclass(frozen=True)
class View:
    """One way to prepare a crop, relative to the model's front-end.

    Args:
        width: width scale on top of the model's own (1.15: 15% more columns per glyph).
        border: rows and columns added on every side (edge pixels repeated), as a share of the
            crop's height (at least one pixel when non-zero).
        side: columns added on the left and on the right only, as a share of the crop's height.
        trim: rows cut from the top and from the bottom, as a share of the crop's height.
    """

    width: float = 1.0
    border: float = 0.0
    side: float = 0.0
    trim: float = 0.0

    def __post_init__(self) -> None:
        if not self.width > 0:
            raise ValueError(f"View width must be positive, got {self.width}")
        for name in ("border", "side", "trim"):
            value = getattr(self, name)
            if not 0 <= value < 0.5:
                raise ValueError(f"View {name} must be in [0, 0.5), got {value}")

    def apply(self, image: np.ndarray, height: int, width_scale: float, **resize: Any) -> np.ndarray | None:
        """A decoded image (H, W[, C]) uint8 -> the model's input for this view (``height`` rows),
        or ``None`` when the view does not apply (a trim of a crop too small to trim). ``resize``:
        ``resize_to_height``'s ``max_width`` and ``min_width`` (training's crop jitter)."""
        h = image.shape[0]
        pixels = lambda share: max(1, round(share * h)) if share else 0  # noqa: E731
        if self.trim:
            m = pixels(self.trim)
            if h - 2 * m < MIN_TRIMMED_ROWS or image.shape[1] - 2 * m < MIN_TRIMMED_ROWS:
                return None
            image = image[m : h - m]
        rows = pixels(self.border)
        cols = rows + pixels(self.side)
        if rows or cols:
            image = np.pad(image, [(rows, rows), (cols, cols)] + [(0, 0)] * (image.ndim - 2), mode="edge")
        return resize_to_height(image, height, width_scale=width_scale * self.width, **resize)


# Chosen on the English model's dev crops (BENCHMARKS.md): the front-end's own view first.
DEFAULT_VIEWS: tuple[View, ...] = (
    View(),
    View(width=0.85),
    View(width=1.15),
    View(width=1.3),
    View(border=0.06),
    View(trim=0.06),
    View(width=1.15, border=0.06),
    View(side=0.12),
    View(width=0.7),
    View(width=1.15, trim=0.06),
)


@dataclass(frozen=True)
class Recheck:
    """A second look at unsure readings: an input whose reading's confidence is below ``below`` is
    read again under each of ``views`` (made from the prepared input, so at the model's height
    already), and the readings are combined as the test-time views' are (``combine``: the
    candidate with the highest mean CTC log-likelihood over the first reading and the views).
    Readings at or above ``below`` cost nothing more, and so do inputs wider than the model's
    ``max_width`` (text lines, read in windows: ``Recognizer.windows``), read once.

    A model stores it with its front-end (``ImageFrontend.recheck``; ``tools/export.py --recheck``),
    since what helps depends on the model. The shipped English model reads the ~11% of clean
    printed words it is least sure of (a quarter of real photo crops) again 15% narrower and 15%
    wider: the thin letters a 1.5x stretch gives too few frames (BENCHMARKS.md, "A second look").
    """

    views: tuple[View, ...] = (View(width=0.85), View(width=1.15))
    below: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "views", check_views(self.views))
        if not 0 < self.below <= 1:
            raise ValueError(f"Recheck below must be a confidence in (0, 1], got {self.below}")

    def to_dict(self) -> dict[str, Any]:
        return {"views": [{"width": v.width, "border": v.border, "side": v.side, "trim": v.trim} for v in self.views],
                "below": self.below}

    @classmethod
    def from_dict(cls, d: Any) -> Recheck:
        try:
            views = tuple(View(**{k: float(v[k]) for k in ("width", "border", "side", "trim") if k in v}) for v in d["views"])
            return cls(views, float(d["below"]))
        except (KeyError, TypeError) as e:
            raise ValueError(f"a recheck needs 'views' (View fields: width, border, side, trim) and 'below', got {d!r}") from e

    def apply(self, prepared: np.ndarray) -> list[np.ndarray]:
        """A prepared input (the model's height) -> the inputs of the views that apply to it."""
        made = [v.apply(prepared, prepared.shape[0], 1.0) for v in self.views]
        return [m for m in made if m is not None]


def check_views(views: Sequence[View]) -> tuple[View, ...]:
    """``views`` as a tuple, refused when empty or not made of ``View``s."""
    views = tuple(views)
    if not views:
        raise ValueError("give at least one view")
    bad = [v for v in views if not isinstance(v, View)]
    if bad:
        raise ValueError(f"views must be View objects, got {type(bad[0]).__name__}")
    return views


def check_frontend(frontend: object) -> ImageFrontend:
    """``frontend`` when views can prepare its inputs (crnn_ocr's image models); ``ValueError``
    naming its kind otherwise (a PaddleOCR recognizer, audio), before anything is read."""
    kind = getattr(frontend, "kind", type(frontend).__name__)
    if kind != "image":  # ImageFrontend's kind
        raise ValueError(f"test-time views apply to crnn_ocr's image models; this model's front-end is {kind!r}")
    return cast("ImageFrontend", frontend)


def combine(readings: Sequence[DecodeResult], frames: Sequence[np.ndarray]) -> DecodeResult:
    """One reading from the views' readings and their ``(T_v, C)`` log-probs (the first view the
    reference): the candidate labelling with the highest mean CTC log-likelihood over the views;
    ties go to the earlier view's reading. When no candidate fits every view (a view too short
    for a long reading), the first view's reading is returned as it is."""
    if len(readings) != len(frames) or not readings:
        raise ValueError(f"one reading per view's frames, got {len(readings)} readings and {len(frames)} frame arrays")
    candidates: dict[tuple[int, ...], DecodeResult] = {}
    for r in readings:
        candidates.setdefault(r.token_ids, r)
    labels = list(candidates)
    mean = np.mean([batch_ctc_log_likelihood(f, labels) for f in frames], axis=0)  # (candidates,)
    best = int(np.argmax(mean))
    if not np.isfinite(mean[best]):
        return readings[0]
    ids = labels[best]
    first = readings[0]
    spans = first.spans if ids == first.token_ids else viterbi_align(frames[0], ids)[1]
    return DecodeResult.make(candidates[ids].text, ids, float(mean[best]), spans)
