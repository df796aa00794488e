"""CTC decoding on numpy log-probabilities: greedy, exact prefix beam search, lexicon-based
transcription (CRNN paper, section 2.3.2), language-model fusion and hotwords.

Works on any CTC model's output ``(T, C)`` (blank = class 0) and never imports torch::

    from crnn_ocr.decoding import CTCDecoder
    dec = CTCDecoder("alphanumeric", beam_width=16, lexicon=["hello", "world"])
    res = dec.decode(log_probs)          # DecodeResult(text, token_ids, score, confidence, spans)
"""

from __future__ import annotations

from crnn_ocr.decoding.ctc import (
    PrefixScorer,
    batch_ctc_log_likelihood,
    beam_search,
    check_log_probs,
    ctc_log_likelihood,
    greedy_decode,
    log_softmax,
    viterbi_align,
)
from crnn_ocr.decoding.decoder import AUTO_PRUNE_LOG_PROB, PRUNE_CLASSES, SCORE_ALL_LIMIT, CTCDecoder
from crnn_ocr.decoding.fusion import CombinedScorer, HotwordScorer, LexiconTrieScorer, LMScorer
from crnn_ocr.decoding.lexicon import Lexicon
from crnn_ocr.decoding.lm import CharNgramLM, KenLMAdapter, LanguageModel
from crnn_ocr.decoding.result import DecodeResult

__all__ = [
    "AUTO_PRUNE_LOG_PROB",
    "PRUNE_CLASSES",
    "SCORE_ALL_LIMIT",
    "CTCDecoder",
    "CharNgramLM",
    "CombinedScorer",
    "DecodeResult",
    "HotwordScorer",
    "KenLMAdapter",
    "LMScorer",
    "LanguageModel",
    "Lexicon",
    "LexiconTrieScorer",
    "PrefixScorer",
    "batch_ctc_log_likelihood",
    "beam_search",
    "check_log_probs",
    "ctc_log_likelihood",
    "greedy_decode",
    "log_softmax",
    "viterbi_align",
]
