"""PrIMuS / Camera-PrIMuS corpus folders -> standard-layout LMDBs.

The corpus (Calvo-Zaragoza & Rizo, 2018) holds one folder per incipit::

    <package>/<id>/<id>.png            the engraved staff (Camera-PrIMuS adds <id>_distorted.jpg)
    <package>/<id>/<id>.semantic       tab-separated semantic tokens (clef-G2 note-A4_quarter ...)
    <package>/<id>/<id>.agnostic       tab-separated agnostic tokens (clef.G-L2 note.quarter-S3 ...)

``scan_primus`` pairs every label file of the chosen encoding with its image; the LMDB label is
the token sequence joined by single spaces (the separator of token alphabets). Missing images,
undecodable images, empty labels and images without a label file are skipped and counted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from crnn_ocr.data import CreateStats, create_lmdb

ENCODINGS = ("semantic", "agnostic")


@dataclass
class PrimusStats:
    """``create`` counts plus images that have no label file of the encoding."""

    create: CreateStats
    missing_labels: int = 0

    @property
    def written(self) -> int:
        return self.create.written

    def summary(self) -> str:
        tail = f"; {self.missing_labels} images without a label file skipped" if self.missing_labels else ""
        return self.create.summary() + tail


def read_primus_label(path: str | os.PathLike) -> str:
    """A ``.semantic``/``.agnostic`` file -> its tokens joined by single spaces ('' if empty)."""
    return " ".join(Path(path).read_text(encoding="utf-8").split())


def scan_primus(
    root: str | os.PathLike, *, encoding: str = "semantic", distorted: bool = False
) -> tuple[list[tuple[Path, str]], int]:
    """(image path, label) pairs under ``root``, sorted by id, and the count of images that have
    no label file. ``distorted``: Camera-PrIMuS's ``<id>_distorted.jpg`` instead of ``<id>.png``.
    Unreadable label files give an empty label (counted as such when written)."""
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}, got {encoding!r}")
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: PrIMuS folder not found")
    suffix = "_distorted.jpg" if distorted else ".png"
    entries: list[tuple[Path, str]] = []
    labelled: set[Path] = set()
    for label_file in sorted(root.rglob(f"*.{encoding}")):
        image = label_file.with_name(label_file.stem + suffix)
        try:
            label = read_primus_label(label_file)
        except (OSError, UnicodeDecodeError):
            label = ""
        entries.append((image, label))
        labelled.add(image)
    missing_labels = sum(1 for p in root.rglob(f"*{suffix}") if p not in labelled
                         and (distorted or not p.name.endswith("_distorted.png")))
    return entries, missing_labels


def create_lmdb_from_primus(
    out: str | os.PathLike,
    root: str | os.PathLike,
    *,
    encoding: str = "semantic",
    distorted: bool = False,
    check: bool = True,
    overwrite: bool = False,
) -> PrimusStats:
    """Write the PrIMuS samples under ``root`` to an LMDB at ``out`` (see ``scan_primus``)."""
    entries, missing_labels = scan_primus(root, encoding=encoding, distorted=distorted)
    stats = create_lmdb(out, entries, check=check, overwrite=overwrite, media="image")
    return PrimusStats(stats, missing_labels)
