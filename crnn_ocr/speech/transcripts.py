"""Transcripts of a speech recognizer's readings: words with their start and end in seconds.

    from crnn_ocr.recognizer import load_recognizer
    from crnn_ocr.speech import transcribe
    rec = load_recognizer("speech.pt")                # a Recognizer whose front-end is an AudioFrontend
    res = rec.read("clip.wav")                         # DecodeResult(text, confidence, spans, ...)
    res = rec.read(samples, sample_rate=8000)          # or a waveform array
    t = transcribe(rec, "clip.wav")                    # Transcript: text, confidence, words with times
    for w in t.words: print(w.word, w.start, w.end)    # seconds

Nothing here reads audio itself: these functions take a ``Recognizer`` and its output. Audio goes
through the model's ``AudioFrontend`` to a (n_mels, frames) log-mel spectrogram, the model emits
one CTC frame per few spectrogram frames, and the decoder's per-symbol frame spans are mapped
back to seconds. Word times come from where CTC emits each
word's symbols: CTC outputs are spiky, so a word's ``start`` is when its first symbol fires and
``end`` when its last one stops, accurate to about one model frame (40 ms with a 10 ms hop and
the crnn archs' width stride of 4), not the acoustic word boundaries.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from crnn_ocr.decoding import DecodeResult
from crnn_ocr.recognizer import Recognizer
from crnn_ocr.speech.audio import AudioFrontend

AudioInput = str | os.PathLike | bytes | np.ndarray


@dataclass(frozen=True)
class WordTiming:
    """One recognized word and when it is spoken, in seconds from the start of the audio."""

    word: str
    start: float
    end: float


@dataclass(frozen=True)
class Transcript:
    """A decoded utterance: ``result`` is the decoder's output, ``words`` its words with times."""

    text: str
    confidence: float
    words: tuple[WordTiming, ...]
    duration: float  # seconds of audio (after resampling to the model's rate)
    result: DecodeResult


def word_spans(result: DecodeResult, alphabet) -> list[tuple[str, int, int]]:
    """Words of a result with their model-frame spans ``(word, start, end)`` (end exclusive).

    Character alphabets split at the space symbol; token alphabets make every token a word.
    """
    words: list[tuple[str, int, int]] = []
    if alphabet.is_tokenized:
        return [(alphabet.symbol_of(i), s, e) for i, (s, e) in zip(result.token_ids, result.spans)]
    current: list[str] = []
    start = end = 0
    for i, (s, e) in zip(result.token_ids, result.spans):
        sym = alphabet.symbol_of(i)
        if sym.isspace():
            if current:
                words.append(("".join(current), start, end))
            current = []
            continue
        if not current:
            start = s
        current.append(sym)
        end = e
    if current:
        words.append(("".join(current), start, end))
    return words


def _audio_frontend(recognizer: Recognizer) -> AudioFrontend:
    if not isinstance(recognizer.frontend, AudioFrontend):
        raise ValueError(f"not a speech recognizer: its front-end reads {recognizer.frontend.media.name}, not audio")
    return recognizer.frontend


def frames_to_seconds(recognizer: Recognizer, frame: float, frames: int) -> float:
    """Model frame index -> seconds, for a spectrogram of ``frames`` frames (``T(frames)`` model
    frames spread evenly over it, as ``Recognizer.frame_to_columns`` does for images)."""
    t = recognizer.output_length(frames)
    return _audio_frontend(recognizer).frames_to_seconds(frame * frames / max(t, 1))


def word_timings(recognizer: Recognizer, result: DecodeResult, frames: int, duration: float | None = None) -> tuple[WordTiming, ...]:
    """The words of ``result`` with start/end seconds; ``frames``: the spectrogram's width
    (``recognizer.prepare(...).shape[1]``); ends are clipped to ``duration`` when given."""
    out = []
    for word, s, e in word_spans(result, recognizer.alphabet):
        start, end = frames_to_seconds(recognizer, s, frames), frames_to_seconds(recognizer, e, frames)
        if duration is not None:
            start, end = min(start, duration), min(end, duration)
        out.append(WordTiming(word, round(start, 3), round(end, 3)))
    return tuple(out)


def transcript(recognizer: Recognizer, result: DecodeResult, features: np.ndarray, duration: float | None = None) -> Transcript:
    """Wrap a speech recognizer's ``result`` of ``features`` (its prepared spectrogram, as
    ``Recognizer.read_files`` yields it) with its word times."""
    frames = int(features.shape[1])
    if duration is None:
        duration = _audio_frontend(recognizer).frames_to_seconds(frames - 1)
    return Transcript(result.text, result.confidence, word_timings(recognizer, result, frames, duration), duration, result)


def transcribe(recognizer: Recognizer, audio: AudioInput, sample_rate: int | None = None) -> Transcript:
    """Read one utterance with a speech recognizer and time its words (seconds)."""
    features = recognizer.prepare(audio, sample_rate)
    return transcript(recognizer, recognizer.read_prepared([features])[0], features)


def format_words(words: Sequence[WordTiming]) -> str:
    """``"seven@0.32-0.71 two@0.80-1.10"`` (seconds, two decimals)."""
    return " ".join(f"{w.word}@{w.start:.2f}-{w.end:.2f}" for w in words)


def transcript_line(path: str | os.PathLike, t: Transcript) -> str:
    """``path<TAB>transcript<TAB>confidence<TAB>word@start-end ...``: what ``infer.py --audio`` prints."""
    return f"{os.fspath(path)}\t{t.text}\t{t.confidence:.4f}\t{format_words(t.words)}"


def transcript_json(path: str | os.PathLike, t: Transcript) -> str:
    """One JSON object: path, text, confidence, score, duration and words with start/end seconds."""
    import json

    return json.dumps({
        "path": os.fspath(path), "text": t.text, "confidence": round(t.confidence, 6), "score": round(t.result.score, 6),
        "duration": round(t.duration, 3), "words": [{"word": w.word, "start": w.start, "end": w.end} for w in t.words],
    }, ensure_ascii=False)
