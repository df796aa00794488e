"""Strongly perturbed copies of real word crops, kept only where a teacher still reads the word.

    python datasets/teacher_copies.py --data runs/ic15 runs/iiit/finetune --teacher PP-OCRv6_rec_small.onnx \
        --copies 6 --seed 1 --out runs/teacher_copies

The trainer's own augmentation (``crnn_ocr.augment``) has to stay mild: nothing checks that a
word is still legible after it. Here each real crop gets ``copies`` perturbations far past that
(heavy blur, down-scaling, JPEG at quality 5-40, strong shear and perspective, a grid warp,
colour shifts, inversion, noise), and a strong reader (the teacher: any model ``load_recognizer``
opens, e.g. PP-OCRv6's small recognizer from the rapidocr wheel) reads every copy; a copy is kept
with the crop's own label only when the teacher's reading equals it under the field's protocol
(case-insensitive alphanumeric). What a strong reader can still read is hard but legible: the
labels stay true (issue 15, part 4). The teacher is used at data-making time only; nothing in
``crnn_ocr`` depends on it.

Every copy is seeded by ``(seed, crop index, copy index)``, so a run reproduces.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # never phone home

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from crnn_ocr.augment import Augmentation  # noqa: E402
from crnn_ocr.metrics import normalize_alnum  # noqa: E402
from crnn_ocr.synth.teacher import Reader, teacher_checked, teacher_reader  # noqa: E402


def severe_perturbation() -> Augmentation:
    """An albumentations pipeline far stronger than the trainer's ``strong``: unsafe without a check."""
    border = cv2.BORDER_REPLICATE
    return Augmentation(A.Compose([
        A.Affine(rotate=(-8, 8), shear={"x": (-25, 25), "y": (-5, 5)}, scale=(0.85, 1.05),
                 translate_percent={"x": (-0.03, 0.03), "y": (-0.08, 0.08)}, border_mode=border, p=0.7),
        A.Perspective(scale=(0.02, 0.08), keep_size=True, border_mode=border, p=0.5),
        A.GridDistortion(num_steps=4, distort_limit=(-0.3, 0.3), border_mode=border, p=0.25),
        A.OneOf([
            A.GaussianBlur(blur_limit=(3, 7), sigma_limit=(0.5, 2.0)),
            A.MotionBlur(blur_limit=(3, 9)),
            A.Defocus(radius=(1, 3)),
        ], p=0.6),
        A.Downscale(scale_range=(0.25, 0.6), p=0.4),
        A.OneOf([
            A.HueSaturationValue(hue_shift_limit=30, sat_shift_limit=40, val_shift_limit=30),
            A.RGBShift(r_shift_limit=40, g_shift_limit=40, b_shift_limit=40),
            A.ChannelShuffle(),
            A.ToGray(),
        ], p=0.6),
        A.InvertImg(p=0.15),
        A.RandomBrightnessContrast(brightness_limit=0.4, contrast_limit=0.5, p=0.7),
        A.RandomGamma(gamma_limit=(50, 200), p=0.3),
        A.GaussNoise(std_range=(0.02, 0.12), p=0.5),
        A.ImageCompression(quality_range=(5, 40), p=0.4),
    ]), "severe")


def perturb(image: np.ndarray, augmentation: Augmentation, seed: Sequence[int]) -> np.ndarray:
    """One seeded perturbation of a uint8 ``(H, W, 3)`` crop; same shape and dtype out."""
    augmentation.set_seed(seed)
    return augmentation(image)


@dataclass
class CopyStats:
    """What :func:`teacher_copies` saw: crops, crops the teacher reads unperturbed, copies kept."""

    crops: int = 0
    undecodable: int = 0  # image bytes that do not decode: skipped
    no_alnum: int = 0  # labels with no letter or digit: the protocol cannot check them, skipped
    originals_read: int = 0
    copies: int = 0
    kept: int = 0

    def summary(self) -> str:
        checked = self.crops - self.undecodable - self.no_alnum
        return (f"{self.crops} crops ({self.undecodable} undecodable, {self.no_alnum} without a letter or digit, skipped); "
                f"the teacher reads {self.originals_read} of {checked} unperturbed; "
                f"kept {self.kept} of {self.copies} perturbed copies ({self.kept / max(1, self.copies):.1%})")


def teacher_copies(samples: Iterable[tuple[bytes, str]], read: Reader, *, copies: int = 6, seed: int = 0,
                   batch: int = 256, stats: CopyStats | None = None) -> Iterator[tuple[bytes, str]]:
    """Yield ``(PNG bytes, label)`` for every perturbed copy the teacher reads as its label.

    ``read`` maps a list of encoded images to a list of texts (``synth.teacher.teacher_reader``).
    The unperturbed crop is read in the same batch, for the statistics only.
    """
    stats = stats if stats is not None else CopyStats()
    augmentation = severe_perturbation()

    def candidates() -> Iterator[tuple[bytes, str, bool]]:  # (PNG, label, is a copy)
        for index, (data, label) in enumerate(samples):
            stats.crops += 1
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if image is None or min(image.shape[:2]) < 2:
                stats.undecodable += 1
                continue
            if not normalize_alnum(label):
                stats.no_alnum += 1
                continue
            yield data, label, False  # the crop as stored
            for c in range(copies):
                out = perturb(image, augmentation, (seed, index, c))
                stats.copies += 1
                yield cv2.imencode(".png", out)[1].tobytes(), label, True

    for png, label, is_copy, right in teacher_checked(candidates(), read, batch):
        if not is_copy:
            stats.originals_read += right
        elif right:
            stats.kept += 1
            yield png, label


def main(argv: Sequence[str] | None = None) -> int:
    from crnn_ocr.data import iter_lmdb_samples, write_lmdb

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", nargs="+", required=True, help="LMDBs of real crops in the standard layout")
    p.add_argument("--teacher", required=True, help="the teacher: an ONNX recognizer or checkpoint load_recognizer opens")
    p.add_argument("--copies", type=int, default=6, help="perturbed copies per crop (default 6)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="the teacher's threads")
    p.add_argument("--limit", type=int, help="only the first N crops of each LMDB")
    p.add_argument("--out", required=True, help="the output LMDB folder")
    a = p.parse_args(argv)
    if a.copies < 1:
        p.error(f"--copies must be at least 1, got {a.copies}")
    for path in a.data:
        if not os.path.isfile(os.path.join(path, "data.mdb")):
            p.error(f"--data {path}: no LMDB there (data.mdb missing)")
    if not os.path.isfile(a.teacher):
        p.error(f"--teacher {a.teacher}: no such file")
    if os.path.exists(os.path.join(a.out, "data.mdb")):
        p.error(f"--out {a.out}: an LMDB already exists there")
    read = teacher_reader(a.teacher, threads=a.threads)

    def samples() -> Iterator[tuple[bytes, str]]:
        for path in a.data:
            for n, (_, image, label) in enumerate(iter_lmdb_samples(path)):
                if a.limit is not None and n >= a.limit:
                    break
                yield bytes(image), label

    stats = CopyStats()
    count = write_lmdb(a.out, teacher_copies(samples(), read, copies=a.copies, seed=a.seed, stats=stats))
    print(f"{stats.summary()}; wrote {count} samples to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
