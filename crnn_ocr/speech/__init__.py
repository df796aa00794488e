"""The speech wing: audio in, transcripts with word times out.

    from crnn_ocr.recognizer import load_recognizer
    from crnn_ocr.speech import transcribe
    t = transcribe(load_recognizer("spoken_digits"), "clip.wav")

- ``AudioFrontend`` (the ``audio`` front-end kind, ``crnn_ocr.frontend``): audio files or
  waveforms -> log-mel spectrograms, the "images" a CRNN reads; with its loading, resampling and
  augmentation (``crnn_ocr.speech.audio``).
- ``crnn_ocr.speech.transcripts``: word timings and transcript lines from a ``Recognizer``'s output.

The wing imports the core; no core module imports it (the core reaches the ``audio`` front-end
kind through ``crnn_ocr.frontend.WING_KINDS``).
"""

from crnn_ocr.speech.audio import AUDIO_EXTENSIONS, AudioFrontend, SpeechAugment, speech_decoder_options
from crnn_ocr.speech.transcripts import (
    Transcript,
    WordTiming,
    format_words,
    frames_to_seconds,
    transcribe,
    transcript,
    transcript_json,
    transcript_line,
    word_spans,
    word_timings,
)

__all__ = [
    "AUDIO_EXTENSIONS", "AudioFrontend", "SpeechAugment", "Transcript", "WordTiming", "format_words", "frames_to_seconds",
    "speech_decoder_options", "transcribe", "transcript", "transcript_json", "transcript_line", "word_spans", "word_timings",
]
