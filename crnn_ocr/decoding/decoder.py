"""``CTCDecoder``: one factory for every decoding mode (greedy, beam, lexicon, LM fusion)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from crnn_ocr.alphabet import Alphabet
from crnn_ocr.decoding.ctc import (
    NEG_INF,
    PrefixScorer,
    _BatchPasses,
    _beam,
    _greedy,
    _owned,
    _prefix_beam_search_batch,
    _result,
    check_log_probs,
)
from crnn_ocr.decoding.fusion import CombinedScorer, HotwordScorer, LexiconTrieScorer, LMScorer
from crnn_ocr.decoding.lexicon import Lexicon
from crnn_ocr.decoding.lm import CharNgramLM, KenLMAdapter, LanguageModel
from crnn_ocr.decoding.result import DecodeResult

__all__ = ["AUTO_PRUNE_LOG_PROB", "PRUNE_CLASSES", "SCORE_ALL_LIMIT", "CTCDecoder"]

SCORE_ALL_LIMIT = 1000
"""``lexicon_mode="auto"`` scores every word up to this many words, else uses candidates."""
PRUNE_CLASSES = 1000
"""``prune_log_prob="auto"``: beam search is exact up to this many classes, pruned above it."""
AUTO_PRUNE_LOG_PROB = -10.0
"""``prune_log_prob="auto"`` for alphabets of more than ``PRUNE_CLASSES`` classes (PP-OCR's 18,710)."""

_LEXICON_MODES = ("auto", "score", "candidates", "trie", "words")
_NEAREST = 32  # candidates taken when none is within max_edit_distance
_BATCH_SEARCH_MIN = 8  # items from which decode_batch searches them together (fewer: one by one is cheaper)


class CTCDecoder:
    """Decodes CTC log-probabilities ``(T, C)`` into ``DecodeResult``s.

    Args:
        alphabet: an ``Alphabet``, a preset name or an alphabet file (``Alphabet.resolve``).
        beam_width: 1 is greedy (best path) unless an LM, hotwords or a trie lexicon need a beam;
            above 1, exact prefix beam search of that width.
        lexicon: ``None`` (lexicon-free), a list of words, a path (one word per line) or a
            ``Lexicon``. Words are matched after the alphabet's case folding.
        lexicon_mode: how the lexicon is used (CRNN paper, section 2.3.2):
            ``"score"``: the word of highest CTC probability ``p(word|y)`` (exact);
            ``"candidates"``: decode lexicon-free, take the words within ``max_edit_distance``
            (the ``32`` nearest if none is) and return the most probable of them;
            ``"trie"``: beam search constrained to lexicon words; with a space symbol in a
            character alphabet the output may be several words separated by single spaces;
            ``"words"``: beam search constrained to a sequence of one or more lexicon words:
            separated by single spaces where the alphabet has a space symbol (as ``"trie"``),
            else one after the other (a token alphabet of words: ``"seven two"``);
            ``"auto"``: ``"score"`` up to ``SCORE_ALL_LIMIT`` words, else ``"candidates"``.
        max_edit_distance: delta of the candidates mode, in symbol edits.
        lm: a language model (``CharNgramLM``, ``KenLMAdapter`` or anything with the
            ``LanguageModel`` methods), or a path: ``*.json`` loads a ``CharNgramLM``, anything
            else a KenLM model. Applied per symbol (character or token).
        alpha, beta: LM weight and insertion bonus (natural-log units per symbol). ``beta`` also
            applies without an LM.
        hotwords, hotword_weight: words to boost (see ``HotwordScorer``), bonus in natural-log
            units for a whole hotword.
        prune_log_prob: in beam search, skip classes below this log-prob when growing prefixes
            (faster, not exact; ``None``: exact). ``"auto"``: exact for alphabets of up to
            ``PRUNE_CLASSES`` classes, ``AUTO_PRUNE_LOG_PROB`` above (the search then runs on
            the classes that reach it at some frame; BENCHMARKS.md measures what it changes).
        logits: inputs are raw scores; ``log_softmax`` is applied.

    LM, hotword and ``beta`` bonuses rank hypotheses (and lexicon words); ``DecodeResult.score``
    stays the acoustic ``log p(l|y)``. ``T = 0`` decodes to the empty text (score 0 without a
    lexicon; score ``-inf`` with one, as no word fits).
    """

    def __init__(
        self,
        alphabet: Alphabet | str | os.PathLike[str],
        *,
        beam_width: int = 1,
        lexicon: Lexicon | Sequence[str] | str | os.PathLike[str] | None = None,
        lexicon_mode: str = "auto",
        max_edit_distance: int = 3,
        lm: LanguageModel | str | os.PathLike[str] | None = None,
        alpha: float = 0.5,
        beta: float = 0.0,
        hotwords: Sequence[str] | None = None,
        hotword_weight: float = 5.0,
        prune_log_prob: float | str | None = "auto",
        logits: bool = False,
    ) -> None:
        if not isinstance(alphabet, (Alphabet, str, os.PathLike)):
            raise ValueError(f"alphabet must be an Alphabet, a preset name or a file, got {type(alphabet).__name__}")
        self.alphabet = Alphabet.resolve(alphabet)
        if isinstance(beam_width, bool) or not isinstance(beam_width, (int, np.integer)) or beam_width < 1:
            raise ValueError(f"beam_width must be an integer >= 1, got {beam_width!r}")
        if isinstance(max_edit_distance, bool) or not isinstance(max_edit_distance, (int, np.integer)) or max_edit_distance < 0:
            raise ValueError(f"max_edit_distance must be an integer >= 0, got {max_edit_distance!r}")
        if lexicon_mode not in _LEXICON_MODES:
            raise ValueError(f"lexicon_mode must be one of {', '.join(_LEXICON_MODES)}, got {lexicon_mode!r}")
        for name, v in (("alpha", alpha), ("beta", beta), ("hotword_weight", hotword_weight)):
            if not isinstance(v, (int, float, np.floating)) or not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number, got {v!r}")
        if prune_log_prob == "auto":
            prune_log_prob = AUTO_PRUNE_LOG_PROB if self.alphabet.num_classes > PRUNE_CLASSES else None
        if prune_log_prob is not None and (not isinstance(prune_log_prob, (int, float, np.floating)) or not prune_log_prob <= 0):
            raise ValueError(f"prune_log_prob must be None, 'auto' or a log-probability <= 0, got {prune_log_prob!r}")
        self.beam_width = int(beam_width)
        self.max_edit_distance = int(max_edit_distance)
        self.alpha, self.beta = float(alpha), float(beta)
        self.prune_log_prob = None if prune_log_prob is None else float(prune_log_prob)
        self.logits = bool(logits)

        self.lexicon: Lexicon | None = None
        self.lexicon_mode: str | None = None
        if lexicon is not None:
            if isinstance(lexicon, Lexicon):
                if lexicon.alphabet != self.alphabet:
                    raise ValueError("the Lexicon was built with a different alphabet")
                self.lexicon = lexicon
            else:
                self.lexicon = Lexicon.build(lexicon, self.alphabet)
            if lexicon_mode == "auto":
                lexicon_mode = "score" if len(self.lexicon) <= SCORE_ALL_LIMIT else "candidates"
            self.lexicon_mode = lexicon_mode

        self.lm = _resolve_lm(lm)
        self._lm_scorer = LMScorer(self.lm, self.alphabet, self.alpha, self.beta) if self.lm is not None or self.beta else None
        self._hot_scorer = HotwordScorer(hotwords, self.alphabet, hotword_weight) if hotwords else None
        scorers: list[PrefixScorer] = [s for s in (self._lm_scorer, self._hot_scorer) if s is not None]
        if self.lexicon_mode in ("trie", "words"):
            assert self.lexicon is not None
            scorers.append(LexiconTrieScorer(self.lexicon, self.alphabet, chain=self.lexicon_mode == "words"))
        self.scorer: PrefixScorer | None = (
            None if not scorers else scorers[0] if len(scorers) == 1 else CombinedScorer(scorers)
        )
        self._word_bonus: np.ndarray | None = None
        if self.lexicon is not None and (self._lm_scorer is not None or self._hot_scorer is not None):
            self._word_bonus = np.full(len(self.lexicon), np.nan)  # filled on demand

    def __repr__(self) -> str:
        parts = [f"beam_width={self.beam_width}"]
        if self.lexicon is not None:
            parts.append(f"lexicon={len(self.lexicon)} words, lexicon_mode={self.lexicon_mode!r}")
        if self.lm is not None:
            parts.append(f"lm={self.lm!r}, alpha={self.alpha}, beta={self.beta}")
        if self._hot_scorer is not None:
            parts.append(f"hotwords={len(self._hot_scorer.hotwords)}")
        return f"CTCDecoder({self.alphabet!r}, {', '.join(parts)})"

    # ------------------------------------------------------------------ public
    def decode(self, log_probs: np.ndarray, logits: bool | None = None) -> DecodeResult:
        """Decode one utterance: ``(T, C)`` log-probs (or logits), ``C == alphabet.num_classes``."""
        lp = check_log_probs(log_probs, self.alphabet.num_classes, logits=self.logits if logits is None else logits)
        return self._decode(_owned(lp, log_probs))

    def decode_batch(
        self,
        log_probs: np.ndarray | Sequence[np.ndarray],
        lengths: Sequence[int] | np.ndarray | None = None,
        logits: bool | None = None,
    ) -> list[DecodeResult]:
        """Decode a batch: ``(N, T, C)`` with optional per-item ``lengths`` (frames beyond an
        item's length are ignored), or a list of ``(T_i, C)`` arrays. Without LM, hotwords,
        trie or pruning the beam searches of all items run as one (numpy calls shared across
        items); results are those of ``decode`` on each item."""
        use_logits = self.logits if logits is None else logits
        if isinstance(log_probs, (list, tuple)):
            items = list(log_probs)
        else:
            arr = np.asarray(log_probs)
            if arr.ndim != 3:
                raise ValueError(f"a batch must have shape (N, T, C), got shape {arr.shape}")
            items = list(arr)
        if lengths is not None:
            lens = np.asarray(lengths)
            if lens.ndim != 1 or len(lens) != len(items):
                raise ValueError(f"lengths must hold one length per item ({len(items)}), got shape {lens.shape}")
            if lens.size and not np.issubdtype(lens.dtype, np.integer):
                raise ValueError(f"lengths must be integers, got dtype {lens.dtype}")
            out_lens = []
            for i, (item, n) in enumerate(zip(items, lens.tolist())):
                frames = np.shape(item)[0] if np.ndim(item) >= 1 else 0
                if not 0 <= n <= frames:
                    raise ValueError(f"lengths[{i}] = {n} is outside 0..{frames}")
                out_lens.append(int(n))
            items = [item[:n] for item, n in zip(items, out_lens)]
        lps = [
            _owned(check_log_probs(item, self.alphabet.num_classes, logits=use_logits, name=f"log_probs[{i}]"), item)
            for i, item in enumerate(items)
        ]
        found: list[tuple[tuple[int, ...], float] | None] = [None] * len(lps)
        if self.scorer is None and self.prune_log_prob is None and self.beam_width > 1 and self.lexicon_mode != "score":
            # One search for the whole batch (the same results as one search per item).
            todo = [i for i, lp in enumerate(lps) if lp.shape[0]]
            if len(todo) >= _BATCH_SEARCH_MIN:
                for i, f in zip(todo, _prefix_beam_search_batch([lps[i] for i in todo], self.beam_width)):
                    found[i] = f
        batch = _BatchPasses()  # the items' exact scores (and spans), together on the first access of one
        return [self._decode(lp, f, batch) for lp, f in zip(lps, found)]

    # ------------------------------------------------------------------ internals
    def _decode(
        self, lp: np.ndarray, found: tuple[tuple[int, ...], float] | None = None, batch: _BatchPasses | None = None
    ) -> DecodeResult:
        """Decode checked log-probs; ``found``: the beam's result if already searched; ``batch``:
        where to compute the exact score with other items'."""
        if lp.shape[0] == 0:
            return DecodeResult.make("", (), 0.0 if self.lexicon is None else NEG_INF, ())
        greedy = _greedy(lp)
        mode = self.lexicon_mode
        if mode == "score":
            return self._best_word(lp, None, greedy)
        if self.beam_width == 1 and self.scorer is None:
            ids = greedy[0]
            if mode is None:
                return DecodeResult.make(self.alphabet.decode(ids), ids, greedy[2], greedy[1])
        else:
            if found is None:
                found = _beam(lp, self.beam_width, self.prune_log_prob, self.scorer)
            if found is None:  # trie mode: no complete word in the beam
                return self._best_word(lp, None, greedy)
            ids = found[0]
        if mode is None or mode in ("trie", "words"):
            return _result(lp, ids, self.alphabet, greedy, batch=batch)
        assert self.lexicon is not None
        rows, dists = self.lexicon.candidates_with_distances(ids, self.max_edit_distance)
        if rows.size == 0:
            rows, dists = self.lexicon.nearest(ids, _NEAREST)
        return self._best_word(lp, rows, greedy, dists)

    def _best_word(
        self, lp: np.ndarray, rows: np.ndarray | None, greedy: tuple[tuple[int, ...], tuple[tuple[int, int], ...], float], dists: np.ndarray | None = None
    ) -> DecodeResult:
        assert self.lexicon is not None
        found = self.lexicon.best(lp, rows, self._bonus(rows), dists)
        if found is None:
            return DecodeResult.make("", (), NEG_INF, ())
        row, score = found
        return _result(lp, self.lexicon.ids[row], self.alphabet, greedy, score)

    def _bonus(self, rows: np.ndarray | None) -> np.ndarray | None:
        """LM / hotword / beta bonus of lexicon words, computed once per word on demand."""
        wb = self._word_bonus
        if wb is None:
            return None
        assert self.lexicon is not None
        need = np.flatnonzero(np.isnan(wb)) if rows is None else rows[np.isnan(wb[rows])]
        for r in need.tolist():
            ids = self.lexicon.ids[r]
            b = 0.0
            if self._lm_scorer is not None:
                b += self._lm_scorer.word_bonus(ids)
            if self._hot_scorer is not None:
                b += self._hot_scorer.word_bonus(ids)
            wb[r] = b
        return wb


def _resolve_lm(lm: LanguageModel | str | os.PathLike[str] | None) -> LanguageModel | None:
    if lm is None:
        return None
    if isinstance(lm, (str, os.PathLike)):
        path = os.fspath(lm)
        if path.endswith(".json"):
            return CharNgramLM.load(path)
        return KenLMAdapter(path)
    missing = [m for m in ("initial_context", "next_context", "log_probs", "end_log_prob") if not hasattr(lm, m)]
    if missing or not hasattr(lm, "order"):
        raise ValueError(f"lm must be a language model (CharNgramLM, KenLMAdapter) or a path; {type(lm).__name__} lacks {', '.join(missing) or 'order'}")
    return lm
