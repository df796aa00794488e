"""Speech accuracy: WER and CER of a speech checkpoint on evaluation sets, with and without a lexicon.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_speech.py --checkpoint runs/speech/best.pt \
        --eval theo=data/fsdd_theo_strings yesno=../shared/data/speech/yesno/labels.tsv [--lexicon words.txt]

Each ``--eval`` is ``NAME=PATH`` (or just a path): a speech LMDB (audio bytes under the image
keys) or a ``path<TAB>transcript`` file. The model runs once per utterance; its log-probs are
decoded twice: greedy without a lexicon, and beam search constrained to sequences of lexicon
words (``lexicon_mode="trie"``, beam 8). The lexicon is ``--lexicon`` (one word per line) or, by
default, the set's own vocabulary: the distinct words of its transcripts (the ten digit words for
digit strings, yes/no for yesno), i.e. a closed-vocabulary task. Prints a Markdown table:
WER (word edits / reference words), CER (character edits / reference characters, spaces
included) and sentence accuracy (exact transcripts). ``--errors N``: after each set, what the
greedy readings get wrong (empty readings, readings with a word outside the lexicon, wrong words
only) and the N most frequent (transcript, reading) pairs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from crnn_ocr.metrics import compute_metrics  # noqa: E402


@dataclass(frozen=True)
class SpeechScores:
    """Error rates over ``count`` utterances."""

    count: int
    wer: float
    cer: float
    sentence_accuracy: float


def score(predictions: Sequence[str], references: Sequence[str]) -> SpeechScores:
    """WER over whitespace-separated words, CER over characters (spaces included), exact-match rate."""
    words = compute_metrics(predictions, references, tokenize=str.split)
    chars = compute_metrics(predictions, references, tokenize=list)
    return SpeechScores(words.count, words.cer, chars.cer, words.word_accuracy)


def load_eval_set(path: str) -> list[tuple[object, str, str]]:
    """(audio source for ``Recognizer.prepare``, transcript, name) of an LMDB or a label file."""
    from crnn_ocr.data import iter_lmdb_samples, read_label_file

    p = Path(path)
    if p.is_dir() and (p / "data.mdb").exists():
        return [(bytes(audio), label, f"{path}#{i}") for i, audio, label in iter_lmdb_samples(p)]
    if p.is_file():
        return [(f, label, os.fspath(f)) for f, label in read_label_file(p)]
    raise ValueError(f"{path}: neither a speech LMDB folder nor a path<TAB>transcript file")


def vocabulary(references: Sequence[str]) -> list[str]:
    """The distinct words of the transcripts, sorted (the closed-vocabulary lexicon)."""
    return sorted({w for ref in references for w in ref.split()})


@dataclass(frozen=True)
class ErrorSummary:
    """The wrong readings of one set: how many, of which kind, and the most frequent."""

    wrong: int
    empty: int  # nothing read
    outside: int  # a word outside the lexicon (a misspelling, for a character model)
    substituted: int  # only lexicon words, but not the transcript
    common: list[tuple[str, str, int]]  # (transcript, reading, count), most frequent first


def summarize_errors(predictions: Sequence[str], references: Sequence[str], lexicon: Sequence[str], top: int = 10) -> ErrorSummary:
    """Classify each wrong reading; ties in ``common`` keep the order of first appearance."""
    from collections import Counter

    words = set(lexicon)
    kinds: Counter[str] = Counter()
    pairs: Counter[tuple[str, str]] = Counter()
    for hyp, ref in zip(predictions, references):
        if hyp == ref:
            continue
        kinds["empty" if not hyp.split() else "outside" if set(hyp.split()) - words else "substituted"] += 1
        pairs[(ref, hyp)] += 1
    common = [(ref, hyp, n) for (ref, hyp), n in pairs.most_common(top)]
    return ErrorSummary(sum(kinds.values()), kinds["empty"], kinds["outside"], kinds["substituted"], common)


def decode_all(decoder, log_probs: Sequence[np.ndarray]) -> list[str]:
    return [decoder.decode(lp).text for lp in log_probs]


def evaluate_set(rec, samples: Sequence[tuple[object, str, str]], lexicon: Sequence[str] | None, beam: int = 8) -> dict:
    """Scores of greedy and lexicon decoding on one set; unreadable audio is skipped and counted."""
    from crnn_ocr.decoding import CTCDecoder
    from crnn_ocr.speech import speech_decoder_options

    feats, refs, bad = [], [], 0
    for source, ref, _name in samples:
        try:
            feats.append(rec.prepare(source))
        except ValueError:
            bad += 1
            continue
        refs.append(rec.alphabet.normalize(" ".join(ref.split())))
    order = sorted(range(len(feats)), key=lambda i: feats[i].shape[1])
    out: list[np.ndarray | None] = [None] * len(feats)
    for start in range(0, len(order), 32):
        idx = order[start : start + 32]
        lp, lengths = rec.log_probs([feats[i] for i in idx])  # (N, T, K), (N,)
        for i, row, n in zip(idx, lp, lengths):
            out[i] = row[:n]
    log_probs = out
    words = list(lexicon) if lexicon else vocabulary(refs)
    greedy = CTCDecoder(rec.alphabet)
    constrained = CTCDecoder(rec.alphabet, **speech_decoder_options(rec.alphabet, beam_width=beam, lexicon=words, lexicon_mode="auto"))
    readings = decode_all(greedy, log_probs)
    return {
        "unreadable": bad,
        "lexicon": words,
        "references": refs,
        "greedy_readings": readings,
        "greedy": score(readings, refs),
        "lexicon_decoder": score(decode_all(constrained, log_probs), refs),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--eval", nargs="+", required=True, help="NAME=PATH or PATH: speech LMDB or path<TAB>transcript file")
    p.add_argument("--lexicon", help="word list for the lexicon decoder (default: each set's own vocabulary)")
    p.add_argument("--beam", type=int, default=8)
    p.add_argument("--errors", type=int, default=0, metavar="N",
                   help="after each set, the kinds of greedy errors and the N most frequent (transcript, reading) pairs")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from crnn_ocr.recognizer import load_recognizer

    rec = load_recognizer(args.checkpoint, device="cpu", expected_kind="speech")
    lexicon = None
    if args.lexicon:
        lexicon = [w.strip() for w in Path(args.lexicon).read_text(encoding="utf-8").splitlines() if w.strip()]
    print(f"checkpoint {args.checkpoint}: {rec.frontend}")
    print("| set | utterances | decoder | WER | CER | sentence acc |")
    print("|---|---:|---|---:|---:|---:|")
    for spec in args.eval:
        name, _, path = spec.rpartition("=") if "=" in spec else (Path(spec).name, "", spec)
        result = evaluate_set(rec, load_eval_set(path), lexicon, args.beam)
        for key, label in (("greedy", "greedy, no lexicon"), ("lexicon_decoder", f"lexicon ({len(result['lexicon'])} words), beam {args.beam}")):
            s: SpeechScores = result[key]
            print(f"| {name} | {s.count} | {label} | {s.wer:.4f} | {s.cer:.4f} | {s.sentence_accuracy:.4f} |")
        if result["unreadable"]:
            print(f"({name}: skipped {result['unreadable']} unreadable utterances)")
        if args.errors:
            e = summarize_errors(result["greedy_readings"], result["references"], result["lexicon"], args.errors)
            common = "; most frequent: " + ", ".join(f'"{r}" read "{h}" {n}' for r, h, n in e.common) if e.common else ""
            print(f"({name}, greedy: {e.wrong} wrong of {len(result['references'])}: {e.empty} empty, {e.outside} with a word "
                  f"outside the lexicon, {e.substituted} with wrong words only{common})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
