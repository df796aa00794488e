"""The alphabet: symbols <-> ids, and the one place where the CTC blank is defined.

The blank is always id 0 (``BLANK``); symbol ``symbols[i]`` has id ``i + 1``. A model with an
alphabet of ``n`` symbols therefore has ``n + 1`` output classes.

Two kinds of label are supported:

* character labels (text, speech characters): every symbol is one character and a label is a
  plain string, ``"hello"`` -> ``[h, e, l, l, o]``;
* token labels (music tokens such as ``note-C4_quarter``, or words): symbols may be several
  characters long and a label is a whitespace-separated string or a list of tokens.

The mode is chosen from the symbols (any multi-character symbol means tokens) unless
``separator`` is given. This module needs neither numpy nor torch.
"""

from __future__ import annotations

import os
import string
from collections.abc import Iterable, Sequence
from typing import Any

BLANK = 0
"""Id of the CTC blank, for every alphabet, model, loss and decoder in crnn_ocr."""

PRESETS: dict[str, tuple[str, bool]] = {
    # name: (symbols, ignore_case)
    "digits": (string.digits, False),
    # The 36-class set of the CRNN paper: labels are lower-cased before encoding.
    "alphanumeric": (string.digits + string.ascii_lowercase, True),
    # Case-sensitive letters and digits (62 symbols).
    "alphanumeric_cased": (string.digits + string.ascii_letters, False),
    # Printable ASCII, space included (95 symbols).
    "printable": ("".join(chr(c) for c in range(0x20, 0x7F)), False),
}


class Alphabet:
    """Maps symbols to ids (``1..n``) and back; id ``0`` is the CTC blank.

    Args:
        symbols: the symbols in id order (without the blank). Each must be non-empty and unique.
        ignore_case: lower-case labels before encoding (all symbols must then be lower-case).
        separator: how a token label is split and joined. ``None`` chooses ``""`` (characters)
            when every symbol is one character, else ``" "`` (whitespace-separated tokens).
    """

    def __init__(
        self,
        symbols: Iterable[str],
        *,
        ignore_case: bool = False,
        separator: str | None = None,
    ) -> None:
        symbols = tuple(symbols)
        if not symbols:
            raise ValueError("an alphabet needs at least one symbol")
        index: dict[str, int] = {}
        for i, sym in enumerate(symbols):
            if not isinstance(sym, str) or sym == "":
                raise ValueError(f"symbol {i} of the alphabet is empty or not a string: {sym!r}")
            if sym in index:
                raise ValueError(f"symbol {sym!r} appears twice in the alphabet (ids {index[sym]} and {i + 1})")
            index[sym] = i + 1
        if separator is None:
            separator = "" if all(len(s) == 1 for s in symbols) else " "
        if separator == "" and any(len(s) != 1 for s in symbols):
            raise ValueError("character alphabets (separator='') need single-character symbols")
        if separator and any(separator in s for s in symbols):
            bad = next(s for s in symbols if separator in s)
            raise ValueError(f"symbol {bad!r} contains the token separator {separator!r}")
        if ignore_case and any(s != s.lower() for s in symbols):
            bad = next(s for s in symbols if s != s.lower())
            raise ValueError(f"ignore_case alphabets need lower-case symbols, got {bad!r}")
        self.symbols: tuple[str, ...] = symbols
        self.ignore_case = ignore_case
        self.separator = separator
        self._index = index

    # ------------------------------------------------------------------ construction
    @classmethod
    def preset(cls, name: str) -> Alphabet:
        """One of ``digits``, ``alphanumeric`` (36 classes, case-folded), ``alphanumeric_cased``, ``printable``."""
        if name not in PRESETS:
            raise ValueError(f"unknown alphabet preset {name!r}; choose one of {', '.join(PRESETS)}")
        symbols, ignore_case = PRESETS[name]
        return cls(symbols, ignore_case=ignore_case)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, ignore_case: bool = False, separator: str | None = None) -> Alphabet:
        """Read one symbol per line (UTF-8). Empty lines are ignored; a line holding one space is the space symbol."""
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().split("\n")
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: cannot read alphabet file: {e}") from None
        symbols: list[str] = []
        first_line: dict[str, int] = {}
        for lineno, line in enumerate(lines, 1):
            line = line.rstrip("\r")
            if line == "":
                continue
            sym = line if line.strip() == "" else line.strip()
            if sym in first_line:
                raise ValueError(f"{path}:{lineno}: symbol {sym!r} is listed twice (first on line {first_line[sym]})")
            first_line[sym] = lineno
            symbols.append(sym)
        if not symbols:
            raise ValueError(f"{path}: alphabet file holds no symbols")
        return cls(symbols, ignore_case=ignore_case, separator=separator)

    @classmethod
    def from_labels(cls, labels: Iterable[str | Sequence[str]], *, separator: str | None = None) -> Alphabet:
        """Build the alphabet of every symbol used in ``labels`` (sorted). ``separator=" "`` for token labels."""
        found: set[str] = set()
        for label in labels:
            if isinstance(label, str):
                found.update(label.split(separator) if separator else label)
            else:
                found.update(label)
        found.discard("")
        return cls(sorted(found), separator=separator)

    @classmethod
    def resolve(cls, spec: str | os.PathLike[str] | Alphabet) -> Alphabet:
        """An Alphabet from a preset name, a file path, or an Alphabet (returned as is)."""
        if isinstance(spec, Alphabet):
            return spec
        spec_s = os.fspath(spec)
        if spec_s in PRESETS:
            return cls.preset(spec_s)
        if os.path.isfile(spec_s):
            return cls.from_file(spec_s)
        raise ValueError(f"alphabet {spec_s!r} is neither a preset ({', '.join(PRESETS)}) nor a file")

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write one symbol per line (the format ``from_file`` reads)."""
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(self.symbols) + "\n")

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, str, bool) for checkpoints; inverse of ``from_dict``."""
        return {"symbols": list(self.symbols), "ignore_case": self.ignore_case, "separator": self.separator}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Alphabet:
        return cls(d["symbols"], ignore_case=bool(d.get("ignore_case", False)), separator=d.get("separator"))

    # ------------------------------------------------------------------ queries
    @property
    def blank(self) -> int:
        """Id of the CTC blank (always ``BLANK`` = 0)."""
        return BLANK

    @property
    def num_classes(self) -> int:
        """Number of model output classes: the symbols plus the blank."""
        return len(self.symbols) + 1

    @property
    def is_tokenized(self) -> bool:
        """True when labels are separator-delimited tokens rather than characters."""
        return self.separator != ""

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Alphabet) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.symbols, self.ignore_case, self.separator))

    def __repr__(self) -> str:
        shown = self.separator.join(self.symbols[:40]) if not self.is_tokenized else " ".join(self.symbols[:8])
        more = "..." if len(self.symbols) > (40 if not self.is_tokenized else 8) else ""
        return f"Alphabet({len(self.symbols)} symbols: {shown!r}{more}, ignore_case={self.ignore_case})"

    def id_of(self, symbol: str) -> int:
        """Id of ``symbol``; ``KeyError`` if absent."""
        return self._index[symbol]

    def symbol_of(self, idx: int) -> str:
        """Symbol of id ``idx`` (``""`` for the blank)."""
        if idx == BLANK:
            return ""
        if not 0 < idx <= len(self.symbols):
            raise ValueError(f"id {idx} is outside the alphabet (0..{len(self.symbols)})")
        return self.symbols[idx - 1]

    # ------------------------------------------------------------------ labels
    def normalize(self, label: str) -> str:
        """Apply the alphabet's case folding."""
        return label.lower() if self.ignore_case else label

    def tokenize(self, label: str | Sequence[str]) -> list[str]:
        """Split a label into symbols (characters, or whitespace-separated tokens)."""
        if not isinstance(label, str):
            return [self.normalize(t) for t in label]
        label = self.normalize(label)
        if not self.is_tokenized:
            return list(label)
        return label.split() if self.separator == " " else [t for t in label.split(self.separator) if t]

    def encode(self, label: str | Sequence[str]) -> list[int]:
        """Label -> ids. Raises ``ValueError`` naming the first unknown symbol and its position."""
        ids = []
        for pos, sym in enumerate(self.tokenize(label)):
            idx = self._index.get(sym)
            if idx is None:
                raise ValueError(f"symbol {sym!r} at position {pos} of label {label!r} is not in the alphabet")
            ids.append(idx)
        return ids

    def try_encode(self, label: str | Sequence[str]) -> list[int] | None:
        """Like ``encode`` but returns ``None`` for a label with unknown symbols (to skip it)."""
        get = self._index.get
        ids = [get(sym) for sym in self.tokenize(label)]
        return None if None in ids else ids  # type: ignore[return-value]

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> label text (blanks dropped; no CTC collapsing: see the decoder for that)."""
        return self.separator.join(self.symbols[i - 1] for i in (int(x) for x in ids) if i != BLANK)


def ctc_min_frames(ids: Sequence[int]) -> int:
    """Fewest CTC frames that can emit ``ids``: one per symbol plus a blank between repeats."""
    repeats = sum(1 for a, b in zip(ids, ids[1:]) if a == b)
    return len(ids) + repeats
