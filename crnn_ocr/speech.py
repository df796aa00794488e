"""Speech recognition with a CRNN checkpoint of kind ``speech``: audio in, transcript out.

    from crnn_ocr.recognizer import load_recognizer
    rec = load_recognizer("speech.pt")               # a SpeechRecognizer
    res = rec.read("clip.wav")                        # DecodeResult(text, confidence, spans, ...)
    res = rec.read(samples, sample_rate=8000)         # or a waveform array
    t = rec.transcribe("clip.wav")                    # Transcript: text, confidence, words with times
    for w in t.words: print(w.word, w.start, w.end)   # seconds

Audio goes through the checkpoint's ``AudioFrontend`` (``crnn_ocr.audio``) to a (n_mels, frames)
log-mel spectrogram, the model emits one CTC frame per few spectrogram frames, and the decoder's
per-symbol frame spans are mapped back to seconds. Word times come from where CTC emits each
word's symbols: CTC outputs are spiky, so a word's ``start`` is when its first symbol fires and
``end`` when its last one stops, accurate to about one model frame (40 ms with a 10 ms hop and
the crnn archs' width stride of 4), not the acoustic word boundaries.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from crnn_ocr.audio import AudioFrontend, audio_features, speech_decoder_options  # noqa: F401 (re-exported)
from crnn_ocr.decoding import DecodeResult
from crnn_ocr.preprocessing import DEFAULT_MIN_WIDTH
from crnn_ocr.onnx_backend import OnnxRecognizer
from crnn_ocr.recognizer import Recognizer

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


class _SpeechReading:
    """Audio in, transcripts and word times out: shared by the torch and onnxruntime speech
    recognizers (mixed in before ``Recognizer`` / ``OnnxRecognizer``)."""

    backend: str
    frontend: AudioFrontend
    min_width: int

    def _init_speech(self, preprocess, model_min_width: int) -> None:
        if preprocess.audio is None:
            raise ValueError("not a speech model: its preprocessing has no audio front-end settings")
        self.frontend = AudioFrontend.from_dict(preprocess.audio)
        self.min_width = max(DEFAULT_MIN_WIDTH, model_min_width)

    def prepare(self, audio: AudioInput, sample_rate: int | None = None, *, name: str | None = None) -> np.ndarray:
        """Audio -> float32 (n_mels, frames) normalized log-mel spectrogram (at least ``min_width`` frames).

        ``ValueError`` naming the file for audio that is not readable, empty, or at a sample
        rate below ``frontend.min_input_rate``.
        """
        return audio_features(audio, self.frontend, sample_rate=sample_rate, min_width=self.min_width, name=name,
                              use_torch=self.backend == "torch")

    def log_probs(self, features: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Spectrograms [(n_mels, frames_i)] -> (log-probs (N, T, K) float32, lengths (N,) int64).

        Right-padded to the longest by repeating the last frame, as in training; the model is
        told each one's length, so the padding changes none of its frames.
        """
        widths = [int(f.shape[1]) for f in features]
        batch = np.empty((len(features), 1, self.frontend.n_mels, max(widths)), dtype=np.float32)  # (N, 1, H, W)
        for i, (f, w) in enumerate(zip(features, widths)):
            batch[i, 0, :, :w] = f
            batch[i, 0, :, w:] = f[:, w - 1 : w]
        log_probs = self._log_probs_of_batch(batch, np.array(widths, dtype=np.int64))  # (N, T, K)
        lengths = np.array([self.output_length(w) for w in widths], dtype=np.int64)
        return log_probs, np.minimum(lengths, log_probs.shape[1])

    def read(self, audio: AudioInput, sample_rate: int | None = None) -> DecodeResult:  # type: ignore[override]
        """Read one utterance: a path, encoded bytes, or a waveform array with its ``sample_rate``."""
        return self.read_prepared([self.prepare(audio, sample_rate)])[0]

    def read_batch(self, audios: Iterable[AudioInput], batch_size: int = 32, sample_rate: int | None = None) -> list[DecodeResult]:  # type: ignore[override]
        """Read many utterances (arrays all at ``sample_rate``); batches group similar lengths."""
        return self.read_prepared([self.prepare(a, sample_rate) for a in audios], batch_size)

    def frames_to_seconds(self, frame: float, frames: int) -> float:
        """Model frame index -> seconds, for a spectrogram of ``frames`` frames (``T(frames)`` model
        frames spread evenly over it, as ``frame_to_columns`` does for images)."""
        t = self.output_length(frames)
        return self.frontend.frames_to_seconds(frame * frames / max(t, 1))

    def word_timings(self, result: DecodeResult, frames: int, duration: float | None = None) -> tuple[WordTiming, ...]:
        """The words of ``result`` with start/end seconds; ``frames``: the spectrogram's width
        (``prepare(...).shape[1]``); ends are clipped to ``duration`` when given."""
        out = []
        for word, s, e in word_spans(result, self.alphabet):
            start, end = self.frames_to_seconds(s, frames), self.frames_to_seconds(e, frames)
            if duration is not None:
                start, end = min(start, duration), min(end, duration)
            out.append(WordTiming(word, round(start, 3), round(end, 3)))
        return tuple(out)

    def transcript(self, result: DecodeResult, features: np.ndarray, duration: float | None = None) -> Transcript:
        """Wrap a result of ``features`` (a prepared spectrogram) with its word times."""
        frames = int(features.shape[1])
        if duration is None:
            duration = self.frontend.frames_to_seconds(frames - 1)
        return Transcript(result.text, result.confidence, self.word_timings(result, frames, duration), duration, result)

    def transcribe(self, audio: AudioInput, sample_rate: int | None = None) -> Transcript:
        """Read one utterance and time its words (seconds)."""
        features = self.prepare(audio, sample_rate)
        return self.transcript(self.read_prepared([features])[0], features)



class SpeechRecognizer(_SpeechReading, Recognizer):
    """Reads audio (paths, encoded bytes, or waveform arrays with their sample rate) with a
    speech CRNN. Same construction and decoder options as ``Recognizer``, read as
    ``speech_decoder_options`` (a lexicon constrains the output to sequences of its words);
    ``prepare`` turns audio into a float32 (n_mels, frames) spectrogram instead of a uint8 image."""

    def __init__(self, model, alphabet, preprocess, *, kind: str = "speech", **options: Any) -> None:
        super().__init__(model, alphabet, preprocess, kind=kind, **speech_decoder_options(alphabet, **options))
        self._init_speech(preprocess, self.model.min_width)


class OnnxSpeechRecognizer(_SpeechReading, OnnxRecognizer):
    """``SpeechRecognizer`` on onnxruntime, with the numpy log-mel front-end: no torch at all.
    ``load_recognizer("speech.onnx")`` returns one for an exported speech checkpoint."""

    def __init__(self, session, alphabet, preprocess, frames, *, kind: str = "speech", **options: Any) -> None:
        super().__init__(session, alphabet, preprocess, frames, kind=kind, **speech_decoder_options(alphabet, **options))
        self._init_speech(preprocess, frames.min_width)


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
