"""Offline text-to-speech voices from three engines, for synthetic speakers.

    voices = available_voices(("espeak", "flite", "festival"))   # those installed here
    waves = speak_many([("seven", voices[0]), ("two nine", voices[5])], seed=0, sample_rate=8000)

Engines (Debian packages; each one is optional, ``available_voices`` lists what is installed):

- ``espeak``: ``espeak-ng``, seven English accents x 16 variants (male, female, klatt) = 112
  voices (``ESPEAK_VOICES`` x ``ESPEAK_VARIANTS``); speed, pitch and word gap drawn per
  utterance.
- ``flite``: ``flite``'s built-in voices kal, kal16, awb, rms, slt (CMU; BSD-style licence);
  duration stretch and mean pitch drawn per utterance.
- ``festival``: every English voice under ``/usr/share/festival/voices`` (``festvox-kallpc16k``,
  ``festvox-kdlpc16k``, ``festvox-us-slt-hts``: kal, ked, slt); duration stretch drawn per
  utterance. One ``festival`` process synthesizes a whole batch (its start-up costs ~1 s).
- ``accent``: festival's Czech, Italian, Finnish and Catalan voices (``festvox-czech-dita``,
  ``-krb``, ``-machac``, ``-ph``, ``festvox-italp16k``, ``festvox-itapc16k``, ``festvox-suopuhe-lj``,
  ``-mv``, ``festvox-ca-ona-hts``: ``ACCENT_VOICES``: nine speakers, four men, four women, a boy) saying
  the English digit words and yes/no respelled in their own language's spelling (``RESPELLINGS``:
  "three" is Czech ``fri`` or ``srii``), so English as non-native speakers say it, in real voices
  (diphones cut from recordings) unlike espeak-ng's formant ones. Each respelling was kept only if
  PocketSphinx's English model, restricted to the ten digits, read it as its digit for most of the
  language's voices (yes and no: all of them, against each other); on 2,000 such digit words it
  reads 71.7%, as it reads FSDD's four speakers (70.1%). Other words raise ``ValueError``.

Each utterance draws its prosody from ``default_rng([seed, i])``, so the output depends only on
the seed, the items and the engines' versions. Waves are float32 mono at ``sample_rate``.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crnn_ocr.speech.audio import load_audio

ENGINES = ("espeak", "flite", "festival", "accent")
ESPEAK_VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029")
ESPEAK_VARIANTS = ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt3")
PROGRAMS = {"espeak": "espeak-ng", "flite": "flite", "festival": "festival", "accent": "festival"}
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
FESTIVAL_ROOT = Path("/usr/share/festival/voices")
FESTIVAL_ENGLISH = ("english", "us")  # festival's language folders whose voices read English text
ACCENT_VOICES = {"czech_dita": "cs", "czech_krb": "cs", "czech_machac": "cs", "czech_ph": "cs", "lp_diphone": "it",
                 "pc_diphone": "it", "suo_fi_lj_diphone": "fi", "hy_fi_mv_diphone": "fi", "upc_ca_ona_hts": "ca"}
RESPELLINGS = {  # language -> English word -> spellings in that language's letters (one drawn per word)
    "cs": {"zero": ("zirou", "ziirou"), "one": ("uan", "van"), "two": ("tu",), "three": ("fri", "srii"), "four": ("for", "foor"),
           "five": ("fajv", "fajf"), "six": ("siks",), "seven": ("sevn", "seven"), "eight": ("ejt", "ejtt"), "nine": ("najn",),
           "yes": ("jes",), "no": ("nou",)},
    "it": {"zero": ("ziro", "zirou"), "one": ("uan", "uann"), "two": ("tu", "tuu"), "three": ("thri", "tri"), "four": ("for", "foor"),
           "five": ("faif", "fai-v"), "six": ("sics", "siks"), "seven": ("seven", "sevn"), "eight": ("eitt", "eit"),
           "nine": ("nain", "naain"), "yes": ("ies",), "no": ("nou",)},
    "fi": {"zero": ("siirou", "tsiirou"), "one": ("uan", "vaan"), "two": ("tuu", "tu"), "three": ("trii", "srii"), "four": ("foor", "fo"),
           "five": ("faiv", "faif"), "six": ("siks",), "seven": ("seven", "sevn"), "eight": ("eit", "eitt"), "nine": ("nain", "naain"),
           "yes": ("jes",), "no": ("nou",)},
    "ca": {"zero": ("ziro", "zirou"), "one": ("uan",), "two": ("tu", "tuu"), "three": ("thri",), "four": ("for", "fo"),
           "five": ("faiv", "faif"), "six": ("sics",), "seven": ("seven", "sevn"), "eight": ("eit", "eic"), "nine": ("nain",),
           "yes": ("ies",), "no": ("nou",)},
}


@dataclass(frozen=True, order=True)
class Voice:
    """One synthetic speaker: an engine and that engine's voice name (espeak: ``en-gb+f2``)."""

    engine: str
    name: str

    def __str__(self) -> str:
        return f"{self.engine}:{self.name}"


def festival_voices(root: Path = FESTIVAL_ROOT, languages: Sequence[str] | None = FESTIVAL_ENGLISH) -> list[str]:
    """Names of the installed festival voices (folders under ``root/<language>/``) of ``languages``
    (None: every language), sorted."""
    if not root.is_dir():
        return []
    return sorted(p.name for lang in root.iterdir() if lang.is_dir() and (languages is None or lang.name in languages)
                  for p in lang.iterdir() if p.is_dir())


def accent_voices(root: Path = FESTIVAL_ROOT) -> list[str]:
    """The ``ACCENT_VOICES`` installed under ``root``, sorted."""
    return [v for v in festival_voices(root, languages=None) if v in ACCENT_VOICES]


def respell(text: str, voice: str, rng: np.random.Generator) -> str:
    """``text`` (English words) in the spelling of accent voice ``voice``'s language, one of each
    word's ``RESPELLINGS`` drawn from ``rng``; ``ValueError`` for a word it has none for."""
    table = RESPELLINGS[ACCENT_VOICES[voice]]
    out = []
    for word in text.split():
        choices = table.get(word.lower())
        if choices is None:
            raise ValueError(f"accent voice {voice!r} cannot say {word!r}: it speaks only {', '.join(table)}")
        out.append(choices[int(rng.integers(len(choices)))])
    return " ".join(out)


def available_voices(engines: Sequence[str] = ENGINES) -> list[Voice]:
    """Every voice of ``engines`` whose program is installed, in a fixed order."""
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        raise ValueError(f"unknown TTS engine {unknown[0]!r}; choose from {', '.join(ENGINES)}")
    voices: list[Voice] = []
    for engine in engines:
        if shutil.which(PROGRAMS[engine]) is None:
            continue
        if engine == "espeak":
            voices += [Voice("espeak", v + (f"+{var}" if var else "")) for v in ESPEAK_VOICES for var in ESPEAK_VARIANTS]
        elif engine == "flite":
            voices += [Voice("flite", v) for v in FLITE_VOICES]
        elif engine == "festival":
            voices += [Voice("festival", v) for v in festival_voices()]
        else:
            voices += [Voice("accent", v) for v in accent_voices()]
    return voices


def pick_voice(rng: np.random.Generator, voices: Sequence[Voice]) -> Voice:
    """An engine uniformly among those in ``voices``, then one of its voices uniformly (espeak's
    112 do not drown flite's 5); two draws from ``rng``."""
    engines = sorted({v.engine for v in voices})
    engine = engines[int(rng.integers(len(engines)))]  # one draw (not one per voice)
    pool = [v for v in voices if v.engine == engine]
    return pool[int(rng.integers(len(pool)))]


def with_silence(wave: np.ndarray, rng: np.random.Generator, sample_rate: int, gain: tuple[float, float]) -> np.ndarray:
    """``wave`` scaled to a peak drawn from ``gain``, with 0.03-0.5 s of silence drawn for each side."""
    wave = wave * np.float32(rng.uniform(*gain) / (float(np.max(np.abs(wave))) or 1.0))
    lead, tail = (int(rng.uniform(0.03, 0.5) * sample_rate) for _ in range(2))
    return np.concatenate([np.zeros(lead, np.float32), wave, np.zeros(tail, np.float32)])


def _run(cmd: list[str], what: str, stdin: bytes | None = None) -> bytes:
    proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=600, check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"{what} failed ({err[-1] if err else f'exit {proc.returncode}'})")
    return proc.stdout


def _espeak(text: str, voice: Voice, rng: np.random.Generator) -> bytes:
    cmd = ["espeak-ng", "-v", voice.name, "-s", str(int(rng.integers(120, 221))), "-p", str(int(rng.integers(20, 81))),
           "-g", str(int(rng.integers(0, 9))), "--stdout", text]
    return _run(cmd, f"espeak-ng voice {voice.name!r}")


def _flite(text: str, voice: Voice, rng: np.random.Generator, out: Path) -> bytes:
    pitch = float(rng.uniform(85, 200)) if voice.name != "slt" else float(rng.uniform(140, 240))
    cmd = ["flite", "-voice", voice.name, "--setf", f"duration_stretch={rng.uniform(0.8, 1.3):.3f}",
           "--setf", f"int_f0_target_mean={pitch:.1f}", "-t", text, "-o", str(out)]
    _run(cmd, f"flite voice {voice.name!r}")
    return out.read_bytes()


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _festival(items: list[tuple[int, str, Voice]], rngs: dict[int, np.random.Generator], folder: Path) -> dict[int, bytes]:
    """One festival process for all ``items`` (index, text, voice) -> index -> WAV bytes."""
    lines = []
    for i, text, voice in items:
        stretch = rngs[i].uniform(0.8, 1.3)
        if voice.engine == "accent":
            text = respell(text, voice.name, rngs[i])
        lines += [f"(voice_{voice.name})", f"(Parameter.set 'Duration_Stretch {stretch:.3f})",
                  f"(utt.save.wave (utt.synth (Utterance Text {_scheme_string(text)})) \"{folder / f'{i}.wav'}\" 'riff)"]
    script = folder / "batch.scm"
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _run(["festival", "-b", str(script)], "festival")
    missing = [i for i, _, _ in items if not (folder / f"{i}.wav").is_file()]
    if missing:
        raise RuntimeError(f"festival wrote no audio for item {missing[0]}")
    return {i: (folder / f"{i}.wav").read_bytes() for i, _, _ in items}


def speak_many(items: Sequence[tuple[str, Voice]], *, seed: int, sample_rate: int, start: int = 0) -> list[np.ndarray]:
    """[(text, voice)] -> float32 (n_i,) waves at ``sample_rate``; item ``k`` draws its prosody
    from ``default_rng([seed, start + k])``. ``RuntimeError`` naming the engine if one fails."""
    rngs = {k: np.random.default_rng([seed, start + k]) for k in range(len(items))}
    raw: dict[int, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="crnn_tts_") as tmp:
        folder = Path(tmp)
        for k, (text, voice) in enumerate(items):
            if voice.engine == "espeak":
                raw[k] = _espeak(text, voice, rngs[k])
            elif voice.engine == "flite":
                raw[k] = _flite(text, voice, rngs[k], folder / f"flite_{k}.wav")
        fest = [(k, text, voice) for k, (text, voice) in enumerate(items) if voice.engine in ("festival", "accent")]
        if fest:
            raw.update(_festival(fest, rngs, folder))
    return [load_audio(raw[k], target_rate=sample_rate, name=f"{items[k][1]} saying {items[k][0]!r}") for k in range(len(items))]
