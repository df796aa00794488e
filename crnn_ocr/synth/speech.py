"""Synthetic spoken digit strings and word sequences (espeak-ng) straight into a speech LMDB.

    python datasets/synth_speech.py --out data/speech_synth --count 3000 --seed 0 --sample-rate 8000 \
        [--content mixed|digits|words] [--words FILE] [--min-words 1] [--max-words 5]

Needs the ``espeak-ng`` program (Debian/Ubuntu: ``apt-get install espeak-ng``). Each utterance
varies the English voice (en-us, en-gb, Scottish, RP, Caribbean, ...), the voice variant (male,
female, klatt), speed (words per minute), pitch, the gap between words and the leading and
trailing silence. Transcripts are lower-case words separated by single spaces ("seven two nine"),
so the character alphabet ``datasets/speech_chars.txt`` encodes them.

``--engines espeak flite festival`` draws each utterance's voice from all three engines (an
engine uniformly, then one of its voices; ``crnn_ocr.synth.voices``): 112 espeak-ng voices, 5
flite voices and the installed festival voices, with 0.03-0.5 s of silence on each side.
``accent`` adds festival's Czech, Italian, Finnish and Catalan voices saying the words respelled
in their languages (the digits, yes and no only).

Content: ``digits`` (strings of the ten digit words), ``words`` (sequences drawn from ``--words``,
default: the ten digit words plus "yes" and "no"), ``mixed`` (half each). Audio is resampled to
``--sample-rate`` and stored as 16-bit PCM WAV under the standard keys; ``labels.txt`` beside
the LMDB lists the transcripts in order. Output depends only on the seed and the espeak-ng
version: sample ``i`` is drawn from ``default_rng([seed, i])``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from crnn_ocr.cli import ArgumentParser, UsageError
from crnn_ocr.data import write_lmdb
from crnn_ocr.speech.audio import encode_wav, load_audio
from crnn_ocr.synth.digits import DIGIT_WORDS
from crnn_ocr.synth.voices import ENGINES, ESPEAK_VARIANTS, ESPEAK_VOICES, available_voices, pick_voice, speak_many, with_silence

DEFAULT_WORDS = DIGIT_WORDS + ("yes", "no")
VOICES = ESPEAK_VOICES
VARIANTS = ESPEAK_VARIANTS


@dataclass
class SynthSpeechConfig:
    out: str
    count: int = 1000
    seed: int = 0
    sample_rate: int = 16000
    content: str = "mixed"  # digits | words | mixed
    words: list[str] = field(default_factory=lambda: list(DEFAULT_WORDS))
    min_words: int = 1
    max_words: int = 5
    speed: tuple[int, int] = (120, 220)  # words per minute
    pitch: tuple[int, int] = (20, 80)  # espeak's 0..99
    voices: Sequence[str] = VOICES
    variants: Sequence[str] = VARIANTS
    espeak: str = "espeak-ng"
    engines: Sequence[str] = ("espeak",)  # more: each utterance in a voice of an engine drawn uniformly (synth.voices)
    overwrite: bool = False


def find_espeak(name: str = "espeak-ng") -> str | None:
    """Path of the espeak-ng program, or None when it is not installed."""
    return shutil.which(name)


def utterance_text(rng: np.random.Generator, cfg: SynthSpeechConfig) -> str:
    """One transcript: 1..max words, from the digit words or from ``cfg.words``."""
    content = cfg.content if cfg.content != "mixed" else ("digits" if rng.random() < 0.5 else "words")
    vocab = DIGIT_WORDS if content == "digits" else tuple(cfg.words)
    n = int(rng.integers(cfg.min_words, cfg.max_words + 1))
    return " ".join(vocab[int(k)] for k in rng.integers(0, len(vocab), n))


def synthesize(text: str, *, voice: str, speed: int, pitch: int, gap: int, espeak: str = "espeak-ng") -> bytes:
    """espeak-ng's WAV bytes for ``text`` (22050 Hz, 16 bit). ``RuntimeError`` if it fails."""
    cmd = [espeak, "-v", voice, "-s", str(speed), "-p", str(pitch), "-g", str(gap), "--stdout", text]
    proc = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    if proc.returncode != 0 or len(proc.stdout) <= 44:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"espeak-ng failed for voice {voice!r} ({err[0] if err else f'exit {proc.returncode}'})")
    return proc.stdout


def make_sample(i: int, cfg: SynthSpeechConfig) -> tuple[bytes, str]:
    """Sample ``i``: (16-bit WAV bytes at ``cfg.sample_rate``, transcript)."""
    rng = np.random.default_rng([cfg.seed, i])
    text = utterance_text(rng, cfg)
    variant = cfg.variants[int(rng.integers(len(cfg.variants)))]
    voice = cfg.voices[int(rng.integers(len(cfg.voices)))] + (f"+{variant}" if variant else "")
    wav = synthesize(
        text, voice=voice, speed=int(rng.integers(cfg.speed[0], cfg.speed[1] + 1)),
        pitch=int(rng.integers(cfg.pitch[0], cfg.pitch[1] + 1)), gap=int(rng.integers(0, 9)), espeak=cfg.espeak,
    )
    wave = load_audio(wav, target_rate=cfg.sample_rate, name=f"espeak-ng output for {text!r}")  # (n,)
    peak = float(np.max(np.abs(wave))) or 1.0
    wave = wave * np.float32(rng.uniform(0.3, 0.9) / peak)
    lead, tail = (int(rng.uniform(0.03, 0.3) * cfg.sample_rate) for _ in range(2))
    wave = np.concatenate([np.zeros(lead, np.float32), wave, np.zeros(tail, np.float32)])
    return encode_wav(wave, cfg.sample_rate), text


def make_samples(start: int, stop: int, cfg: SynthSpeechConfig) -> list[tuple[bytes, str]]:
    """Samples ``start..stop-1``. espeak-ng alone: ``make_sample`` each. Several engines: sample ``i``
    draws its transcript, engine (uniformly among those installed), voice, gain and silences from
    ``default_rng([seed, i])`` and its prosody from the engine (``synth.voices.speak_many``, which
    runs festival once for the whole range)."""
    if tuple(cfg.engines) == ("espeak",):
        return [make_sample(i, cfg) for i in range(start, stop)]

    voices = available_voices(cfg.engines)
    if not voices:
        raise UsageError(f"no TTS engine of {', '.join(cfg.engines)} is installed (apt-get install espeak-ng flite festival festvox-*)")
    rngs = [np.random.default_rng([cfg.seed, i]) for i in range(start, stop)]
    items = [(utterance_text(rng, cfg), pick_voice(rng, voices)) for rng in rngs]
    waves = speak_many(items, seed=cfg.seed, sample_rate=cfg.sample_rate, start=start)
    return [(encode_wav(with_silence(wave, rng, cfg.sample_rate, (0.3, 0.9)), cfg.sample_rate), text)
            for (text, _), rng, wave in zip(items, rngs, waves)]


def generate(cfg: SynthSpeechConfig) -> int:
    """Write ``cfg.count`` utterances to ``cfg.out`` (and ``labels.txt``); returns the count."""
    if "espeak" in cfg.engines and len(cfg.engines) == 1 and find_espeak(cfg.espeak) is None:
        raise UsageError(f"{cfg.espeak}: program not found (install it: apt-get install espeak-ng)")
    labels: list[str] = []
    chunk = 250

    def samples() -> Iterator[tuple[bytes, str]]:
        from tqdm import tqdm

        with tqdm(total=cfg.count, desc="synth_speech", unit="utt", file=sys.stderr, disable=cfg.count < 200) as bar:
            for start in range(0, cfg.count, chunk):
                for data, text in make_samples(start, min(cfg.count, start + chunk), cfg):
                    labels.append(text)
                    bar.update()
                    yield data, text

    n = write_lmdb(cfg.out, samples(), overwrite=cfg.overwrite)
    (Path(cfg.out) / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    return n


def parse_args(argv: list[str] | None = None) -> SynthSpeechConfig:
    p = ArgumentParser(prog="synth_speech.py", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output LMDB folder")
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sample-rate", type=int, default=16000, help="Hz; match the model's (tools/train.py --sample-rate)")
    p.add_argument("--content", default="mixed", choices=["digits", "words", "mixed"])
    p.add_argument("--words", help="word list, one per line (default: the ten digit words, yes, no)")
    p.add_argument("--min-words", type=int, default=1)
    p.add_argument("--max-words", type=int, default=5)
    p.add_argument("--espeak", default="espeak-ng", help="the espeak-ng program")
    p.add_argument("--engines", nargs="+", default=["espeak"], choices=list(ENGINES),
                   help="TTS engines to draw each utterance's voice from (crnn_ocr.synth.voices; default: espeak-ng alone)")
    p.add_argument("--overwrite", action="store_true")
    a = p.parse_args(argv)
    if a.count < 1 or a.min_words < 1 or a.max_words < a.min_words:
        p.error("need --count >= 1 and 1 <= --min-words <= --max-words")
    if not 4000 <= a.sample_rate <= 48000:
        p.error(f"--sample-rate must be in 4000..48000 Hz, got {a.sample_rate}")
    words = list(DEFAULT_WORDS)
    if a.words:
        try:
            words = [w.strip().lower() for w in Path(a.words).read_text(encoding="utf-8").splitlines() if w.strip()]
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"{a.words}: cannot read word list ({e})") from None
        if not words:
            raise UsageError(f"{a.words}: word list holds no words")
    return SynthSpeechConfig(out=a.out, count=a.count, seed=a.seed, sample_rate=a.sample_rate, content=a.content,
                             words=words, min_words=a.min_words, max_words=a.max_words, espeak=a.espeak,
                             engines=a.engines, overwrite=a.overwrite)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    n = generate(cfg)
    print(f"wrote {n} utterances to {cfg.out}")
    return 0

