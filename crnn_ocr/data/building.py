"""Building LMDBs from files on disk: a ``path<TAB>label`` file or a folder of labelled files.

Images and audio are built the same way: each file's bytes are stored as they are. Which files a
media takes, how one is checked and how a bad one is counted come from its front-end kind
(``crnn_ocr.frontend.Media``: ``media_named``, ``all_media``), so nothing here asks for audio.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from crnn_ocr.data.lmdb_format import write_lmdb
from crnn_ocr.frontend import Media, all_media, media_named

@dataclass
class CreateStats:
    """What ``create_lmdb_*`` wrote and skipped."""

    written: int = 0
    undecodable: int = 0
    missing_files: int = 0
    empty_labels: int = 0
    out: str = ""
    media: str = "image"  # what the entries hold: a Media name ("image", "audio")
    first_skipped: list[str] = field(default_factory=list)  # the first few skipped files, each with why

    MAX_NAMED = 5

    @property
    def skipped(self) -> int:
        return self.undecodable + self.missing_files + self.empty_labels

    def skip(self, what: str, path: str | os.PathLike, why: str) -> None:
        """Count one skipped entry (``what``: undecodable, missing_files or empty_labels), naming the first few."""
        setattr(self, what, getattr(self, what) + 1)
        if len(self.first_skipped) < self.MAX_NAMED:
            self.first_skipped.append(f"{os.fspath(path)} ({why})")

    def summary(self) -> str:
        """E.g. ``"wrote 98 samples to out/ (skipped 2: 1 undecodable image, 1 missing file; first: a.png
        (undecodable image), b.png (missing file))"``."""
        parts = [
            f"{n} {one if n == 1 else many}"
            for n, one, many in (
                (self.undecodable, *media_named(self.media).undecodable),
                (self.missing_files, "missing file", "missing files"),
                (self.empty_labels, "empty label", "empty labels"),
            )
            if n
        ]
        named = f"; first: {', '.join(self.first_skipped)}" if self.first_skipped else ""
        tail = f" (skipped {self.skipped}: {', '.join(parts)}{named})" if parts else ""
        return f"wrote {self.written} samples to {self.out}{tail}"


def read_label_file(path: str | os.PathLike, root: str | os.PathLike | None = None) -> list[tuple[Path, str]]:
    """Parse ``path<TAB>label`` lines (deep-text-recognition-benchmark's gt.txt) into (image path, label).

    Image paths are relative to ``root`` (default: the label file's folder). Blank lines are
    ignored; a line without a tab raises ``ValueError`` naming the file and line.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, expected a label file")
    if not path.is_file():
        raise ValueError(f"{path}: no such label file")
    base = Path(root) if root is not None else path.parent
    if not base.is_dir():
        raise ValueError(f"{base}: {'is a file, expected an' if base.exists() else 'no such'} image folder")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 ({e.reason} at byte {e.start})") from None
    entries = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise ValueError(f"{path}:{lineno}: expected 'image path<TAB>label', got {line[:60]!r}")
        image, label = line.split("\t", 1)
        if not image.strip():
            raise ValueError(f"{path}:{lineno}: empty image path")
        entries.append((base / image.strip(), label))
    return entries


_INDEX_SUFFIX = re.compile(r"_\d+$")


def scan_image_folder(folder: str | os.PathLike, *, media: str = "image") -> list[tuple[Path, str]]:
    """The files of ``media`` ("image", "audio": ``Media.extensions``) under ``folder``
    (recursively, sorted) with their labels.

    The label of ``x/word_12.png`` is the first line of the sibling ``x/word_12.txt`` when it
    exists, else the file name stem without a trailing ``_<digits>`` index (``word``), the naming
    of TextRecognitionDataGenerator-style folders.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: {'is a file, expected a folder' if folder.exists() else 'no such folder'}")
    wanted = media_named(media)
    entries = []
    for image in sorted(p for p in folder.rglob("*") if p.is_file() and wanted.matches(p)):
        sidecar = image.with_suffix(".txt")
        if sidecar.is_file():
            lines = sidecar.read_text(encoding="utf-8-sig", errors="replace").splitlines()
            label = lines[0] if lines else ""
        else:
            label = _INDEX_SUFFIX.sub("", image.stem)
        entries.append((image, label))
    return entries


def _media(name: str) -> Media | None:
    """The media called ``name``; None for "auto"."""
    return None if name == "auto" else media_named(name)


def create_lmdb(
    out: str | os.PathLike,
    entries: Iterable[tuple[Path, str]],
    *,
    check: bool = True,
    overwrite: bool = False,
    media: str = "auto",
) -> CreateStats:
    """Write (file, label) pairs to an LMDB, skipping and counting unusable ones.

    The files' bytes are stored as they are under the ``image-%09d`` keys, audio included (WAV,
    FLAC, OGG, ...; ``LmdbDataset`` with an audio front-end reads them). ``media``: a media name
    ("image", "audio") or "auto": the first media (images first) every file has an extension of,
    else images. ``check`` fully decodes every file (slower, but no corrupt sample reaches
    training); without it a file is only checked as far as its media's header (``Media.check``).
    """
    kind = _media(media)
    if kind is None:
        entries = list(entries)
        kind = next((m for m in all_media() if entries and all(m.matches(p) for p, _ in entries)), media_named("image"))
    stats = CreateStats(out=os.fspath(out), media=kind.name)
    if not overwrite and (Path(out) / "data.mdb").exists():
        raise FileExistsError(f"{out}: an LMDB already exists there (use --overwrite)")

    def samples() -> Iterator[tuple[bytes, str]]:
        for path, label in entries:
            if not label:
                stats.skip("empty_labels", path, "empty label")
                continue
            try:
                data = Path(path).read_bytes()
            except OSError:
                stats.skip("missing_files", path, "missing file")
                continue
            if not data or not kind.check(data, check):
                stats.skip("undecodable", path, kind.why_undecodable)
                continue
            yield data, label

    stats.written = write_lmdb(out, samples(), overwrite=overwrite)
    return stats


def create_lmdb_from_label_file(
    out: str | os.PathLike,
    label_file: str | os.PathLike,
    *,
    root: str | os.PathLike | None = None,
    check: bool = True,
    overwrite: bool = False,
    media: str = "auto",
) -> CreateStats:
    """LMDB from a ``path<TAB>label`` file (gt.txt, or audio paths with transcripts); see ``read_label_file``."""
    return create_lmdb(out, read_label_file(label_file, root), check=check, overwrite=overwrite, media=media)


def create_lmdb_from_folder(
    out: str | os.PathLike, folder: str | os.PathLike, *, check: bool = True, overwrite: bool = False, media: str = "auto"
) -> CreateStats:
    """LMDB from a folder of files labelled by sibling ``.txt`` files or names; see
    ``scan_image_folder``. ``media="auto"``: the files of the first media (images first) the folder holds."""
    kind = _media(media)
    entries: list[tuple[Path, str]] = []
    for candidate in [kind] if kind is not None else all_media():
        entries = scan_image_folder(folder, media=candidate.name)
        if entries:
            kind = candidate
            break
    return create_lmdb(out, entries, check=check, overwrite=overwrite, media=(kind or media_named("image")).name)
