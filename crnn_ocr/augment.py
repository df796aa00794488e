"""Training-time image augmentation with albumentations (2.x).

Applied by ``LmdbDataset(augment=True)`` *after* the keep-ratio resize, so every effect has the
same strength at the model's resolution whatever the source size, it costs little, and the
image keeps its resized size (the width used to filter and bucket samples stays true). Nothing
here flips or crops: the label stays valid. Evaluation uses no augmentation.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # never phone home

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

STRENGTHS = ("none", "light", "default", "strong")


class Augmentation:
    """A callable ``uint8 (H, W[, 3]) -> uint8`` of the same shape, reseedable per worker."""

    def __init__(self, compose: A.Compose | None, strength: str) -> None:
        self.compose = compose
        self.strength = strength

    def set_seed(self, seed: int | Sequence[int] | None) -> None:
        """Reseed: every transform then draws, in turn, from one stream seeded by ``seed``
        (an int, a sequence of ints such as ``(seed, sample, copy)``, or None: fresh entropy).

        Not ``Compose.set_random_seed``: it gives each transform its own generator with the
        *same* seed, so their coin flips coincide (one draw would decide whether all apply).
        """
        if self.compose is not None:
            py_seed = str(list(seed)) if isinstance(seed, Sequence) else seed  # random.Random takes no list
            self.compose.set_random_state(np.random.default_rng(seed), random.Random(py_seed))

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if self.compose is None:
            return image
        out = self.compose(image=image)["image"]
        return out if out.dtype == np.uint8 else np.clip(out, 0, 255).astype(np.uint8)

    def __repr__(self) -> str:
        return f"Augmentation(strength={self.strength!r})"


def build_augmentation(strength: str = "default", *, seed: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """Blur, noise, affine/perspective, brightness/contrast and JPEG artefacts at a given strength.

    ``strength``: ``none`` (identity), ``light``, ``default`` or ``strong`` (probabilities and
    magnitudes scale together).
    """
    if strength not in STRENGTHS:
        raise ValueError(f"unknown augmentation strength {strength!r}; choose one of {', '.join(STRENGTHS)}")
    if strength == "none":
        return Augmentation(None, strength)
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
    augmentation = Augmentation(A.Compose(transforms), strength)
    if seed is not None:
        augmentation.set_seed(seed)
    return augmentation
