"""Labelled clips for audio classification and tagging, straight into LMDBs (``datasets/audio_clips.py``).

    python datasets/audio_clips.py --source fsdd --recordings ../shared/data/speech/fsdd \
        --speakers george jackson nicolas --out data/clips/digits_train        # label: the digit word
    python datasets/audio_clips.py --source fsdd --recordings ../shared/data/speech/fsdd \
        --label speaker --split train --out data/clips/speakers_train          # speaker identification
    python datasets/audio_clips.py --source espeak --count 3000 --out data/clips/espeak   # espeak-ng voices
    python datasets/audio_clips.py --source tts --count 6000 --out data/clips/tts         # espeak-ng, flite, festival
    python datasets/audio_clips.py --source yesno --recordings ../shared/data/speech/yesno \
        --files 0 30 --out data/clips/yesno_train                              # the words of files 0..29
    python datasets/audio_clips.py --source mix --recordings ../shared/data/speech/fsdd \
        --speakers george jackson nicolas --espeak-count 1000 --count 6000 --out data/clips/mix_train
    python datasets/audio_clips.py --source drums --exclude-kits "The Black Pearl 1.0" HardElectro1 "circAfrique v4" \
        --sample-rate 16000 --seconds 1 --out data/clips/drums_train            # real drum recordings (hydrogen-drumkits)

Sources: ``fsdd`` one single-digit recording per clip, as recorded, labelled by its digit word or
(``--label speaker``) its speaker, selected by ``--speakers`` and the ``--split`` column of
``labels.tsv``; ``espeak`` one digit word per clip in a random espeak-ng voice, variant, speed and
pitch (``crnn_ocr.synth.speech``); ``tts`` one digit word per clip (digit ``i % 10``) in a voice
of espeak-ng, flite, festival or festival's foreign voices respelling English (``--engines``, ``accent``;
``crnn_ocr.synth.voices``), with 0.03-0.5 s of
silence on each side; ``yesno`` the eight words of each yes/no sequence, cut at
their pauses (a file whose pauses do not give eight words is skipped and counted); ``mix`` the
tagging set: a ``--seconds`` clip holding 1..3 different digits (``--min-digits``,
``--max-digits``), each from a different voice (FSDD speakers of ``--speakers``, and
``--espeak-count`` espeak-ng words, each its own voice), silence-trimmed, at a random gain and a
random onset (they may overlap), over white or brown noise at an SNR drawn from ``--snr``; its
label is the digits' words in class order, comma-separated (``"two,seven"``); ``drums`` every
sample of the Hydrogen drumkits in ``--recordings`` (default: Debian's ``hydrogen-drumkits``,
``/usr/share/hydrogen/data/drumkits``), or of ``--kits`` / all but ``--exclude-kits`` (split by
kit), as a ``--seconds`` clip from its first sound, labelled by the class its instrument's name
gives (``crnn_ocr.synth.drumkits``: kick, snare, hihat, tom, cymbal, ...; instruments of no class
are left out); ``sources.tsv`` beside the LMDB names each clip's kit, instrument and file (each
kit has its own licence).

Every LMDB gets ``classes.txt`` beside it (``tools/train.py --alphabet``) and ``labels.txt``.
Output depends only on the seed (and the espeak-ng version): clip ``i`` draws from
``default_rng([seed, i])``.
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crnn_ocr.cli import ArgumentParser, UsageError
from crnn_ocr.data import read_label_file, write_lmdb
from crnn_ocr.speech.audio import encode_wav, load_audio, trim_silence
from crnn_ocr.synth.digits import DIGIT_WORDS, read_recordings, select
from crnn_ocr.synth.voices import ENGINES

SOURCES = ("fsdd", "espeak", "tts", "yesno", "mix", "drums")


@dataclass
class ClipsConfig:
    """What ``datasets/audio_clips.py`` writes (see the module docstring)."""

    source: str
    out: str
    recordings: str | None = None  # fsdd, yesno, mix: the recordings folder
    speakers: Sequence[str] | None = None  # fsdd, mix: these speakers only (default: all)
    split: str | None = None  # fsdd: this value of labels.tsv's split column only
    label: str = "word"  # fsdd: "word" (the digit) or "speaker"
    files: tuple[int, int] | None = None  # yesno: files [start, end) of the sorted list (default: all)
    kits: Sequence[str] | None = None  # drums: only these kit folders (default: all)
    exclude_kits: Sequence[str] = ()  # drums: never these
    count: int = 1000  # espeak, mix
    espeak_count: int = 0  # mix: espeak-ng digit words added to the voices
    engines: Sequence[str] = ("espeak", "flite", "festival")  # tts: the engines to draw voices from
    min_digits: int = 1
    max_digits: int = 3
    seconds: float = 1.5  # mix, drums: clip length
    snr: tuple[float, float] = (0.0, 20.0)  # mix: dB
    sample_rate: int = 8000
    seed: int = 0
    overwrite: bool = False


@dataclass(frozen=True)
class Word:
    """One spoken word: float32 samples at the config's rate, its class and whose voice it is."""

    wave: np.ndarray
    label: str
    voice: str
    origin: str = ""  # drums: kit<TAB>instrument<TAB>sample file (sources.tsv)


# ------------------------------------------------------------------------------------ sources
def fsdd_words(cfg: ClipsConfig) -> tuple[list[Word], int]:
    """The selected recordings as they are (label: digit word or speaker); (words, unreadable)."""
    chosen = [r for r in select(read_recordings(cfg.recordings), cfg.speakers, cfg.recordings)
              if cfg.split is None or r.split == cfg.split]
    if not chosen:
        raise UsageError(f"{cfg.recordings}: no recordings of split {cfg.split!r} for the chosen speakers")
    words, skipped = [], 0
    for rec in chosen:
        try:
            wave = load_audio(rec.path, target_rate=cfg.sample_rate)
        except ValueError:
            skipped += 1
            continue
        words.append(Word(wave, rec.speaker if cfg.label == "speaker" else DIGIT_WORDS[rec.digit], rec.speaker))
    return words, skipped


def espeak_words(count: int, seed: int, sample_rate: int) -> list[Word]:
    """``count`` single digit words, each in its own random espeak-ng voice (``synth.speech.make_sample``)."""
    from crnn_ocr.synth.speech import SynthSpeechConfig, find_espeak, make_sample

    if find_espeak() is None:
        raise UsageError("espeak-ng: program not found (install it: apt-get install espeak-ng)")
    cfg = SynthSpeechConfig(out="", count=count, seed=seed, sample_rate=sample_rate, content="digits", min_words=1, max_words=1)
    words = []
    for i in range(count):
        data, text = make_sample(i, cfg)
        words.append(Word(load_audio(data, target_rate=sample_rate), text, f"espeak-{seed}-{i}"))
    return words


def tts_words(count: int, seed: int, sample_rate: int, engines: Sequence[str]) -> list[Word]:
    """``count`` single digit words (digit ``i % 10``), each in a voice of an engine drawn uniformly
    from ``engines`` (then a voice of it uniformly: espeak's 112 do not drown flite's 5), with
    0.03-0.5 s of silence before and after and a random peak level (``crnn_ocr.synth.voices``)."""
    from crnn_ocr.synth.voices import available_voices, pick_voice, speak_many, with_silence

    voices = available_voices(engines)
    if not voices:
        raise UsageError(f"no TTS engine of {', '.join(engines)} is installed (apt-get install espeak-ng flite festival festvox-*)")
    rngs = [np.random.default_rng([seed, i, 1]) for i in range(count)]
    items = [(DIGIT_WORDS[i % 10], pick_voice(rng, voices)) for i, rng in enumerate(rngs)]
    waves = speak_many(items, seed=seed, sample_rate=sample_rate)
    return [Word(with_silence(trim_silence(wave, sample_rate), rng, sample_rate, (0.2, 0.9)), text, str(voice))
            for (text, voice), rng, wave in zip(items, rngs, waves)]


def split_words(wave: np.ndarray, sample_rate: int, count: int, *, frame_ms: float = 10.0, join_ms: float = 60.0,
                min_word_ms: float = 80.0, pad_ms: float = 60.0) -> list[tuple[int, int]] | None:
    """Sample ranges of the ``count`` words of an utterance, cut at its pauses; None when the pauses
    do not give ``count`` words. Frames louder than halfway (in dB) between the quiet floor (10th
    percentile) and the peak are voiced; voiced runs less than ``join_ms`` apart join, runs shorter
    than ``min_word_ms`` (clicks) go, then the shortest gaps close until ``count`` runs are left.
    Each word keeps ``pad_ms`` on both sides."""
    frame = max(1, int(sample_rate * frame_ms / 1000))
    n = len(wave) // frame
    if n < count:
        return None
    rms = np.sqrt(np.mean(np.square(wave[: n * frame].reshape(n, frame), dtype=np.float64), axis=1)) + 1e-9
    db = 20 * np.log10(rms)
    voiced = db > (np.percentile(db, 10) + db.max()) / 2
    edges = np.flatnonzero(np.diff(np.r_[0, voiced.astype(np.int8), 0]))
    runs: list[list[int]] = []
    for a, b in zip(edges[::2].tolist(), edges[1::2].tolist()):
        if runs and a - runs[-1][1] < join_ms / frame_ms:
            runs[-1][1] = b
        else:
            runs.append([a, b])
    runs = [r for r in runs if r[1] - r[0] >= min_word_ms / frame_ms]
    while len(runs) > count:
        k = int(np.argmin([runs[j + 1][0] - runs[j][1] for j in range(len(runs) - 1)]))
        runs[k : k + 2] = [[runs[k][0], runs[k + 1][1]]]
    if len(runs) != count:
        return None
    pad = int(pad_ms / frame_ms)
    return [(max(0, a - pad) * frame, min(n, b + pad) * frame) for a, b in runs]


def yesno_words(cfg: ClipsConfig) -> tuple[list[Word], int]:
    """The words of the selected yes/no files (``labels.tsv``: path<TAB>transcript); (words, files skipped)."""
    folder = Path(cfg.recordings)
    table = folder / "labels.tsv"
    if not table.is_file():
        raise UsageError(f"{folder}: no labels.tsv (path<TAB>transcript lines)")
    rows = sorted(read_label_file(table, folder), key=lambda row: str(row[0]))
    if cfg.files is not None:
        rows = rows[cfg.files[0] : cfg.files[1]]
    words, skipped = [], 0
    for path, transcript in rows:
        spoken = transcript.split()
        try:
            wave = load_audio(path, target_rate=cfg.sample_rate)
        except ValueError:
            skipped += 1
            continue
        spans = split_words(wave, cfg.sample_rate, len(spoken))
        if spans is None:
            skipped += 1
            continue
        words += [Word(wave[a:b], word, Path(path).stem) for (a, b), word in zip(spans, spoken)]
    return words, skipped


def drum_words(cfg: ClipsConfig) -> tuple[list[Word], int]:
    """Every sample of the chosen Hydrogen kits as a ``cfg.seconds`` clip (``crnn_ocr.synth.drumkits``):
    the hit from its first sound, after 0-50 ms of silence, cut or padded with silence to the
    clip length; label: its drum class. (words, sample files unreadable or silent)."""
    from crnn_ocr.synth.drumkits import DRUMKITS_DIR, find_drumkits, read_drumkit

    root = cfg.recordings or DRUMKITS_DIR
    try:
        kits = find_drumkits(root, cfg.kits, cfg.exclude_kits)
        samples = [s for kit in kits for s in read_drumkit(kit)]
    except ValueError as e:
        raise UsageError(str(e)) from None
    if not samples:
        raise UsageError(f"{root}: the chosen kits hold no sample of a known drum class")
    n = int(round(cfg.seconds * cfg.sample_rate))
    words, skipped = [], 0
    for i, s in enumerate(samples):
        try:
            wave = load_audio(s.path, target_rate=cfg.sample_rate)
        except ValueError:
            skipped += 1
            continue
        if not np.any(wave):
            skipped += 1
            continue
        lead = int(np.random.default_rng([cfg.seed, i]).integers(0, int(0.05 * cfg.sample_rate) + 1))
        hit = trim_silence(wave, cfg.sample_rate)[: n - lead]
        clip = np.zeros(n, np.float32)
        clip[lead : lead + len(hit)] = hit
        words.append(Word(clip, s.label, s.kit, f"{s.kit}\t{s.instrument}\t{s.path}"))
    return words, skipped


# ------------------------------------------------------------------------------------ mixtures
def mixture(i: int, voices: dict[str, dict[str, list[np.ndarray]]], cfg: ClipsConfig) -> tuple[np.ndarray, str]:
    """Clip ``i`` of the tagging set: (float32 (n,) samples, its tags in class order)."""
    rng = np.random.default_rng([cfg.seed, i])
    n = int(round(cfg.seconds * cfg.sample_rate))
    k = int(rng.integers(cfg.min_digits, cfg.max_digits + 1))
    names = sorted(voices)
    chosen_voices = [names[j] for j in rng.permutation(len(names))[:k]]  # a different voice per digit
    clip = np.zeros(n, np.float64)
    digits: list[str] = []
    for voice in chosen_voices:
        available = sorted(d for d in voices[voice] if d not in digits)
        if not available:
            continue
        digit = available[int(rng.integers(len(available)))]
        takes = voices[voice][digit]
        wave = takes[int(rng.integers(len(takes)))][:n]
        wave = wave / (float(np.max(np.abs(wave))) or 1.0) * 10 ** (rng.uniform(-6, 0) / 20)
        start = int(rng.integers(0, n - len(wave) + 1))
        clip[start : start + len(wave)] += wave
        digits.append(digit)
    noise = rng.standard_normal(n)
    if rng.random() < 0.5:  # brown noise: integrated white noise, drift removed
        noise = np.cumsum(noise)
        noise -= np.linspace(noise[0], noise[-1], n)
    speech_power = float(np.mean(clip**2)) or 1e-6
    snr = rng.uniform(*cfg.snr)
    clip += noise * math.sqrt(speech_power / (float(np.mean(noise**2)) or 1.0) / 10 ** (snr / 10))
    clip *= 0.9 / (float(np.max(np.abs(clip))) or 1.0)
    return clip.astype(np.float32), ",".join(w for w in DIGIT_WORDS if w in digits)


def mixture_voices(cfg: ClipsConfig) -> tuple[dict[str, dict[str, list[np.ndarray]]], int]:
    """voice -> digit word -> silence-trimmed takes, from FSDD speakers and espeak-ng words; (voices, unreadable)."""
    voices: dict[str, dict[str, list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))
    skipped = 0
    if cfg.recordings:
        words, skipped = fsdd_words(ClipsConfig(source="fsdd", out=cfg.out, recordings=cfg.recordings, speakers=cfg.speakers,
                                                split=cfg.split, sample_rate=cfg.sample_rate))
        for w in words:
            voices[w.voice][w.label].append(trim_silence(w.wave, cfg.sample_rate))
    for w in espeak_words(cfg.espeak_count, cfg.seed + 1, cfg.sample_rate) if cfg.espeak_count else []:
        voices[w.voice][w.label].append(trim_silence(w.wave, cfg.sample_rate))
    if len(voices) < cfg.max_digits:
        raise UsageError(f"--source mix: {len(voices)} voice{'s' if len(voices) != 1 else ''} for up to {cfg.max_digits} digits "
                         "from different voices; "
                         "give --recordings and/or --espeak-count")
    return voices, skipped


# ------------------------------------------------------------------------------------ writing
def generate(cfg: ClipsConfig) -> tuple[int, int]:
    """Write the LMDB, ``classes.txt`` and ``labels.txt``; returns (clips written, recordings or files skipped)."""
    if cfg.source == "mix":
        voices, skipped = mixture_voices(cfg)
        classes = list(DIGIT_WORDS)
        origins: list[str] = []

        def clips() -> Iterator[tuple[np.ndarray, str]]:
            for i in range(cfg.count):
                yield mixture(i, voices, cfg)
    else:
        if cfg.source == "espeak":
            words, skipped = espeak_words(cfg.count, cfg.seed, cfg.sample_rate), 0
        elif cfg.source == "tts":
            words, skipped = tts_words(cfg.count, cfg.seed, cfg.sample_rate, cfg.engines), 0
        elif cfg.source == "drums":
            words, skipped = drum_words(cfg)
        else:
            words, skipped = fsdd_words(cfg) if cfg.source == "fsdd" else yesno_words(cfg)
        found = {w.label for w in words}
        origins = [w.origin for w in words if w.origin]
        classes = [d for d in DIGIT_WORDS if d in found] if found <= set(DIGIT_WORDS) else sorted(found)

        def clips() -> Iterator[tuple[np.ndarray, str]]:
            for w in words:
                yield w.wave, w.label
    labels: list[str] = []

    def samples() -> Iterator[tuple[bytes, str]]:
        for wave, label in clips():
            labels.append(label)
            yield encode_wav(wave, cfg.sample_rate), label

    n = write_lmdb(cfg.out, samples(), overwrite=cfg.overwrite)
    (Path(cfg.out) / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    (Path(cfg.out) / "classes.txt").write_text("\n".join(classes) + "\n", encoding="utf-8")
    if origins:  # where each clip came from (each kit has its own licence)
        rows = [f"{i}\t{o}" for i, o in enumerate(origins, 1)]
        (Path(cfg.out) / "sources.tsv").write_text("index\tkit\tinstrument\tfile\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return n, skipped


def parse_args(argv: list[str] | None = None) -> ClipsConfig:
    p = ArgumentParser(prog="audio_clips.py", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", required=True, choices=SOURCES)
    p.add_argument("--out", required=True, help="output LMDB folder")
    p.add_argument("--recordings", help="fsdd, mix: FSDD's folder (labels.tsv); yesno: the yes/no folder (labels.tsv); "
                   "drums: a folder of Hydrogen drumkits (default: /usr/share/hydrogen/data/drumkits)")
    p.add_argument("--speakers", nargs="+", help="fsdd, mix: only these speakers")
    p.add_argument("--split", help="fsdd, mix: only recordings of this labels.tsv split (train, test)")
    p.add_argument("--label", default="word", choices=["word", "speaker"], help="fsdd: the digit word or the speaker")
    p.add_argument("--kits", nargs="+", help="drums: only these kit folders of --recordings")
    p.add_argument("--exclude-kits", nargs="+", default=[], help="drums: leave these kit folders out")
    p.add_argument("--files", nargs=2, type=int, metavar=("START", "END"), help="yesno: files START..END-1 of the sorted list")
    p.add_argument("--count", type=int, default=1000, help="espeak, mix: clips to write")
    p.add_argument("--espeak-count", type=int, default=0, help="mix: espeak-ng digit words added as voices")
    p.add_argument("--engines", nargs="+", default=["espeak", "flite", "festival"], choices=list(ENGINES),
                   help="tts: TTS engines to draw voices from (those not installed are left out)")
    p.add_argument("--min-digits", type=int, default=1)
    p.add_argument("--max-digits", type=int, default=3)
    p.add_argument("--seconds", type=float, default=1.5, help="mix, drums: clip length")
    p.add_argument("--snr", nargs=2, type=float, default=[0.0, 20.0], metavar=("LOW", "HIGH"), help="mix: noise SNR range, dB")
    p.add_argument("--sample-rate", type=int, default=8000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    a = p.parse_args(argv)
    if a.source in ("fsdd", "yesno") and not a.recordings:
        p.error(f"--source {a.source} needs --recordings")
    if a.count < 1 or a.espeak_count < 0 or not 1 <= a.min_digits <= a.max_digits <= len(DIGIT_WORDS) or a.seconds <= 0:
        p.error("need --count >= 1, --espeak-count >= 0, 1 <= --min-digits <= --max-digits <= 10 and --seconds > 0")
    if not 4000 <= a.sample_rate <= 48000:
        p.error(f"--sample-rate must be in 4000..48000 Hz, got {a.sample_rate}")
    return ClipsConfig(source=a.source, out=a.out, recordings=a.recordings, speakers=a.speakers, split=a.split, label=a.label,
                       files=tuple(a.files) if a.files else None, kits=a.kits, exclude_kits=a.exclude_kits, count=a.count, espeak_count=a.espeak_count, engines=a.engines,
                       min_digits=a.min_digits, max_digits=a.max_digits, seconds=a.seconds, snr=(a.snr[0], a.snr[1]),
                       sample_rate=a.sample_rate, seed=a.seed, overwrite=a.overwrite)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    n, skipped = generate(cfg)
    tail = f" (skipped {skipped} unreadable or unsplittable file{'s' if skipped != 1 else ''})" if skipped else ""
    print(f"wrote {n} clips to {cfg.out}{tail}")
    return 0 if n else 1
