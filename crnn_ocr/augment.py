"""Training-time image augmentation with albumentations (2.x).

Applied by ``LmdbDataset(augment=True)`` *after* the keep-ratio resize, so every effect has the
same strength at the model's resolution whatever the source size, it costs little, and the
image keeps its resized size (the width used to filter and bucket samples stays true). Nothing
here flips or crops: the label stays valid. Evaluation uses no augmentation.

``crop_jitter`` adds one geometric step *before* the resize (the front-end asks ``draw_view``):
a share of the images is prepared as a random ``crnn_ocr.views.View`` (stretched or squeezed in
width, a border added, rows trimmed or columns added at the sides), the variations of a detector's
crop that test-time views read; the text itself is never cut more than a view would.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # never phone home

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from crnn_ocr.views import View  # noqa: E402

STRENGTHS = ("none", "light", "default", "strong")
JITTER_WIDTH = (0.8, 1.3)  # width scale of a jittered crop (log-uniform): squeezed less than views may, so CTC labels fit
JITTER_BORDER = (0.02, 0.1)  # share of the height added on every side
JITTER_TRIM = (0.02, 0.08)  # share of the height cut top and bottom (a view's 6%, a little more)
JITTER_SIDE = (0.03, 0.2)  # share of the height added left and right


def random_view(rng: np.random.Generator) -> View:
    """One random ``View``: a width scale, and with it one of a border (30%), a trim (30%) or side
    columns (15%), or nothing else (25%)."""
    width = float(np.exp(rng.uniform(np.log(JITTER_WIDTH[0]), np.log(JITTER_WIDTH[1]))))
    r = rng.random()
    if r < 0.3:
        return View(width=width, border=float(rng.uniform(*JITTER_BORDER)))
    if r < 0.6:
        return View(width=width, trim=float(rng.uniform(*JITTER_TRIM)))
    if r < 0.75:
        return View(width=width, side=float(rng.uniform(*JITTER_SIDE)))
    return View(width=width)


class Augmentation:
    """A callable ``uint8 (H, W[, 3]) -> uint8`` of the same shape, reseedable per worker."""

    def __init__(self, compose: A.Compose | None, strength: str, crop_jitter: float = 0.0) -> None:
        if not 0.0 <= crop_jitter <= 1.0:
            raise ValueError(f"crop_jitter must be a share in [0, 1], got {crop_jitter}")
        self.compose = compose
        self.strength = strength
        self.crop_jitter = crop_jitter
        self._rng = np.random.default_rng()

    def set_seed(self, seed: int | Sequence[int] | None) -> None:
        """Reseed: every transform then draws, in turn, from one stream seeded by ``seed``
        (an int, a sequence of ints such as ``(seed, sample, copy)``, or None: fresh entropy).

        Not ``Compose.set_random_seed``: it gives each transform its own generator with the
        *same* seed, so their coin flips coincide (one draw would decide whether all apply).
        """
        if self.compose is not None:
            py_seed = str(list(seed)) if isinstance(seed, Sequence) else seed  # random.Random takes no list
            self.compose.set_random_state(np.random.default_rng(seed), random.Random(py_seed))
        if self.crop_jitter:  # the crop's own stream, independent of the transforms' (a child of the same seed)
            self._rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])

    def draw_view(self) -> View | None:
        """The ``crnn_ocr.views.View`` to prepare the next image with (``crop_jitter`` of the time),
        or None: the front-end's own preparation."""
        if not self.crop_jitter or self._rng.random() >= self.crop_jitter:
            return None
        return random_view(self._rng)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if self.compose is None:
            return image
        out = self.compose(image=image)["image"]
        return out if out.dtype == np.uint8 else np.clip(out, 0, 255).astype(np.uint8)

    def __repr__(self) -> str:
        jitter = f", crop_jitter={self.crop_jitter}" if self.crop_jitter else ""
        return f"Augmentation(strength={self.strength!r}{jitter})"


def build_augmentation(strength: str = "default", *, seed: int | None = None, crop_jitter: float = 0.0) -> Augmentation:
    """Blur, noise, affine/perspective, brightness/contrast and JPEG artefacts at a given strength.

    ``strength``: ``none`` (identity), ``light``, ``default`` or ``strong`` (probabilities and
    magnitudes scale together). ``crop_jitter``: the share of images the front-end prepares as a
    random view (``draw_view``) instead of its own way.
    """
    if strength not in STRENGTHS:
        raise ValueError(f"unknown augmentation strength {strength!r}; choose one of {', '.join(STRENGTHS)}")
    if strength == "none":
        augmentation = Augmentation(None, strength, crop_jitter)
        if seed is not None:
            augmentation.set_seed(seed)
        return augmentation
    k = {"light": 0.5, "default": 1.0, "strong": 1.6}[strength]
    p = lambda base: min(1.0, base * k)  # noqa: E731
    border = cv2.BORDER_REPLICATE
    transforms = [
        A.Affine(
            rotate=(-3 * k, 3 * k),
            shear={"x": (-10 * k, 10 * k), "y": (-2 * k, 2 * k)},
            scale=(1 - 0.08 * k, 1 + 0.03 * k),
            translate_percent={"x": (-0.02 * k, 0.02 * k), "y": (-0.05 * k, 0.05 * k)},
            border_mode=border,
            p=p(0.4),
        ),
        A.Perspective(scale=(0.01, 0.03 * k), keep_size=True, border_mode=border, p=p(0.25)),
        A.OneOf([A.GaussianBlur(blur_limit=(3, 5), sigma_limit=(0.3, 1.0 * k)), A.MotionBlur(blur_limit=(3, 5))], p=p(0.25)),
        A.RandomBrightnessContrast(brightness_limit=0.25 * k, contrast_limit=0.3 * k, p=p(0.4)),
        A.GaussNoise(std_range=(0.01, 0.05 * k), p=p(0.25)),
        A.ImageCompression(quality_range=(max(10, int(60 - 25 * k)), 95), p=p(0.2)),
    ]
    augmentation = Augmentation(A.Compose(transforms), strength, crop_jitter)
    if seed is not None:
        augmentation.set_seed(seed)
    return augmentation
