"""The class list of a classifier or tagger: class names <-> indices, and labels <-> index lists.

A class list file holds one class name per line (blank lines ignored): what ``--alphabet`` names
for ``tools/train.py --kind classify|tag``. An LMDB label is one class name (classify) or
comma-separated class names (tag: ``"three,seven"``), the field's layout kept. Indices run from 0
(there is no blank). ``ClassList`` answers the calls ``LmdbDataset`` and the trainer make of an
``Alphabet`` (``encode``, ``try_encode``, ``decode``, ``num_classes``, ``save``, ``to_dict``), so
the core reads classification LMDBs unchanged. This module needs neither numpy nor torch.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

TAG_SEPARATOR = ","


class ClassList:
    """Class names in index order.

    Args:
        classes: the names (non-empty, unique, without surrounding spaces; a tagger's without commas).
        multilabel: labels name several classes (tag) rather than exactly one (classify).
    """

    def __init__(self, classes: Iterable[str], *, multilabel: bool = False) -> None:
        classes = tuple(classes)
        if not classes:
            raise ValueError("a class list needs at least one class")
        index: dict[str, int] = {}
        for i, name in enumerate(classes):
            if not isinstance(name, str) or not name or name != name.strip():
                raise ValueError(f"class {i} is empty, not a string or has surrounding spaces: {name!r}")
            if multilabel and TAG_SEPARATOR in name:
                raise ValueError(f"class {name!r} contains the tag separator {TAG_SEPARATOR!r}")
            if name in index:
                raise ValueError(f"class {name!r} is listed twice (indices {index[name]} and {i})")
            index[name] = i
        self.classes: tuple[str, ...] = classes
        self.multilabel = multilabel
        self._index = index

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, multilabel: bool = False) -> ClassList:
        """One class per line (UTF-8); blank lines are ignored. ``ValueError`` naming the file and line."""
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: cannot read the class list: {e}") from None
        names: list[str] = []
        first: dict[str, int] = {}
        for lineno, line in enumerate(lines, 1):
            name = line.strip()
            if not name:
                continue
            if name in first:
                raise ValueError(f"{path}:{lineno}: class {name!r} is listed twice (first on line {first[name]})")
            if multilabel and TAG_SEPARATOR in name:
                raise ValueError(f"{path}:{lineno}: class {name!r} contains the tag separator {TAG_SEPARATOR!r}")
            first[name] = lineno
            names.append(name)
        if not names:
            raise ValueError(f"{path}: the class list holds no classes")
        return cls(names, multilabel=multilabel)

    def save(self, path: str | os.PathLike[str]) -> None:
        """One class per line (what ``from_file`` reads)."""
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(self.classes) + "\n")

    def to_dict(self) -> dict[str, Any]:
        """Plain data for checkpoints and ONNX metadata (stored under ``alphabet``)."""
        return {"classes": list(self.classes), "multilabel": self.multilabel}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ClassList:
        if "classes" not in d:
            raise ValueError(f"not a class list (keys {sorted(d)}): a CTC model's alphabet?")
        return cls(d["classes"], multilabel=bool(d.get("multilabel", False)))

    # ------------------------------------------------------------------ queries
    @property
    def num_classes(self) -> int:
        """Model outputs: one per class."""
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.classes)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ClassList) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.classes, self.multilabel))

    def __repr__(self) -> str:
        shown = ", ".join(self.classes[:10]) + (", ..." if len(self.classes) > 10 else "")
        return f"ClassList({len(self.classes)} classes: {shown}{', multilabel' if self.multilabel else ''})"

    def index(self, name: str) -> int:
        """Index of class ``name``; ``KeyError`` if absent."""
        return self._index[name]

    # ------------------------------------------------------------------ labels
    def encode(self, label: str) -> list[int]:
        """A label -> class indices: ``[i]`` for a class name; for a tagger, the sorted indices of
        its comma-separated tags (repeats once). ``ValueError`` saying what is wrong: an unknown
        class, an empty label or tag list, an empty tag."""
        if not self.multilabel:
            name = label.strip()
            if not name:
                raise ValueError("empty label (no class)")
            if name not in self._index:
                raise ValueError(f"label {label!r} names no class ({self._known()})")
            return [self._index[name]]
        tags = [t.strip() for t in label.split(TAG_SEPARATOR)]
        if not any(tags):
            raise ValueError(f"empty tag list {label!r}")
        if not all(tags):
            raise ValueError(f"empty tag in {label!r}")
        unknown = [t for t in tags if t not in self._index]
        if unknown:
            raise ValueError(f"tag {unknown[0]!r} of {label!r} names no class ({self._known()})")
        return sorted({self._index[t] for t in tags})

    def try_encode(self, label: str) -> list[int] | None:
        """``encode``, or None for a label it refuses."""
        try:
            return self.encode(label)
        except ValueError:
            return None

    def decode(self, ids: Iterable[int]) -> str:
        """Class indices -> a label (tags joined by commas)."""
        return TAG_SEPARATOR.join(self.classes[int(i)] for i in ids)

    def _known(self) -> str:
        head = ", ".join(self.classes[:12])
        return f"known: {head}{', ...' if len(self.classes) > 12 else ''}"
