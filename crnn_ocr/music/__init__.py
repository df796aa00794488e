"""The music wing: PrIMuS semantic tokens, their engraving (MEI), music21 scores, the PrIMuS corpus.

A monophonic staff is read as a sequence of tokens (Calvo-Zaragoza & Rizo, 2018):

    clef-G2 keySignature-DM timeSignature-3/4 note-A4_quarter. note-B4_eighth barline ...

* ``semantic``: the token grammar, ``parse_token`` / ``validate_semantic`` (a list of
  ``TokenIssue``, never an exception for bad input), ``parse_semantic``, pitch and metre helpers;
* ``mei``: ``semantic_to_mei``, the engraving source for Verovio (``crnn_ocr.synth.music``);
* ``musicxml``: ``semantic_to_stream`` / ``write_score`` (MusicXML and MIDI through music21) and
  ``stream_to_semantic`` (a music21 stream -> tokens; ``UnsupportedMusic`` for chords, tuplets,
  voices, ...);
* ``primus``: PrIMuS / Camera-PrIMuS folders -> LMDBs (imports the data pipeline, hence torch;
  not re-exported here).

This wing imports the core; the core never imports it. The names below need only the standard
library (music21 is imported on use: ``pip install crnn_ocr[music]``).
"""

from __future__ import annotations

from crnn_ocr.music.mei import MeiOptions, semantic_to_mei
from crnn_ocr.music.musicxml import (
    M21_TYPES,
    MeasureTokens,
    excerpt_tokens,
    first_part,
    measure_tokens,
    semantic_to_stream,
    stream_to_semantic,
    write_score,
)
from crnn_ocr.music.semantic import (
    CLEFS,
    DURATIONS,
    KEY_SHARPS,
    SHARPS_KEY,
    STEPS,
    InvalidSequence,
    Symbol,
    TokenIssue,
    UnsupportedMusic,
    count_symbols,
    diatonic_index,
    format_pitch,
    key_alterations,
    parse_pitch,
    parse_semantic,
    parse_token,
    primus_vocabulary,
    primus_vocabulary_file,
    split_tokens,
    time_signature_parts,
    validate_semantic,
)

__all__ = [
    "CLEFS", "DURATIONS", "KEY_SHARPS", "M21_TYPES", "SHARPS_KEY", "STEPS", "InvalidSequence", "MeasureTokens",
    "MeiOptions", "Symbol", "TokenIssue", "UnsupportedMusic", "count_symbols", "diatonic_index", "excerpt_tokens", "first_part",
    "format_pitch", "key_alterations", "measure_tokens", "parse_pitch", "parse_semantic", "parse_token",
    "primus_vocabulary", "primus_vocabulary_file",
    "semantic_to_mei", "semantic_to_stream", "split_tokens", "stream_to_semantic", "time_signature_parts",
    "validate_semantic", "write_score",
]
