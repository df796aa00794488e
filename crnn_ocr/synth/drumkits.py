"""Real drum recordings for sound classification: Hydrogen drumkits (``datasets/audio_clips.py --source drums``).

A Hydrogen drumkit is a folder with ``drumkit.xml`` (its instruments, each with one or more
sample files: velocity layers, or one ``filename`` in the older format) and the samples
(WAV or FLAC). Debian's ``hydrogen-drumkits`` package installs fourteen of them under
``/usr/share/hydrogen/data/drumkits`` (GPL-2, CC-BY-3.0, CC-BY-SA-3.0 or CC0 per kit: see the
package's copyright file), recorded acoustic kits, electronic kits and hand percussion.

An instrument's class comes from its name (``drum_class``): the first of ``DRUM_RULES`` whose
pattern it matches, case-insensitively, so "Cowbell" is a cowbell before "bell" makes it a cymbal,
"Sangban1 Bell Hit" a hand drum, and "Snare Rimshot" a snare before "rim" could claim it.
Instruments whose names match no rule (effects such as "Zap 1", unnamed slots such as "17",
"Whistle", "Agogo Low") are left out.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DRUMKITS_DIR = "/usr/share/hydrogen/data/drumkits"

# (class, pattern) in the order they are tried
DRUM_RULES: tuple[tuple[str, str], ...] = (
    ("cowbell", r"cowbell"),
    ("clap", r"clap"),
    ("hand_drum", r"djembe|conga|bongo|cajon|dununba|sangban|kenkeni"),
    ("hihat", r"hi-?\s*hat|\bo?hh\b|\bhat\b"),
    ("cymbal", r"crash|ride|splash|china|cymbal|\bbell\b"),
    ("kick", r"kick|bass\s*drum|bassdrum|\bbd\b"),
    ("snare", r"snare"),
    ("rim", r"stick|rim\s*click"),
    ("tom", r"\btom"),
    ("shaker", r"maraca|tambourine|shaker"),
)
DRUM_CLASSES: tuple[str, ...] = tuple(sorted(c for c, _ in DRUM_RULES))


def drum_class(instrument: str) -> str | None:
    """The class of an instrument name (``DRUM_RULES``), or None when no rule matches."""
    name = instrument.lower()
    for label, pattern in DRUM_RULES:
        if re.search(pattern, name):
            return label
    return None


@dataclass(frozen=True)
class DrumSample:
    """One sample file of a kit's instrument."""

    path: Path
    label: str
    instrument: str
    kit: str


def read_drumkit(folder: str | Path) -> list[DrumSample]:
    """A kit's samples of instruments with a class, in file order. ``ValueError`` naming the file
    when ``drumkit.xml`` is missing or not XML."""
    folder = Path(folder)
    xml = folder / "drumkit.xml"
    try:
        root = ET.parse(xml).getroot()
    except (OSError, ET.ParseError) as e:
        raise ValueError(f"{xml}: not a Hydrogen drumkit ({e})") from None
    for element in root.iter():  # drop the namespace Hydrogen 0.9.4+ writes
        element.tag = element.tag.rsplit("}", 1)[-1]
    kit = (root.findtext("name") or folder.name).strip()
    samples = []
    for instrument in root.iter("instrument"):
        name = (instrument.findtext("name") or "").strip()
        files = [f.text.strip() for f in instrument.iter("filename") if f.text and f.text.strip()]
        label = drum_class(name)
        if label is not None:
            samples += [DrumSample(folder / f, label, name, kit) for f in files]
    return samples


def find_drumkits(root: str | Path, kits: Sequence[str] | None = None, exclude: Sequence[str] = ()) -> list[Path]:
    """The kit folders under ``root`` (those holding ``drumkit.xml``), sorted by name: only ``kits``
    when given, never ``exclude``. ``ValueError`` for a named kit that is not there."""
    root = Path(root)
    found = {p.parent.name: p.parent for p in root.glob("*/drumkit.xml")}
    if not found:
        raise ValueError(f"{root}: no drumkit folders (*/drumkit.xml); install hydrogen-drumkits or give --recordings")
    unknown = sorted((set(kits or ()) | set(exclude)) - set(found))
    if unknown:
        raise ValueError(f"{root}: no drumkit {unknown[0]!r}; there are {', '.join(sorted(found))}")
    chosen = [k for k in sorted(found) if (kits is None or k in kits) and k not in exclude]
    return [found[k] for k in chosen]
