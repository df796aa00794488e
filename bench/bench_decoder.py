"""Decoder benchmark: crnn_ocr.decoding vs fast-ctc-decode and pyctcdecode (benchmark-only
dependencies), plus lexicon decoding with a 50k-word lexicon.

    .venv/bin/python bench/bench_decoder.py [--quick] [--reps 3] [--seed 0] [--only search|batch|lexicon]
        [--pyctcdecode-python .bench-venv/bin/python]

``--quick --reps 1`` is a smoke run (seconds): a few utterances, beam 10 only.

pyctcdecode pins numpy < 2 (OpenCV 5, in the main venv, needs numpy >= 2), so it runs in a venv
of its own, on the same inputs saved to a file (``bench/pyctcdecode_worker.py``); make it once:

    python3 -m venv .bench-venv && .bench-venv/bin/pip install pyctcdecode "numpy<2"

Without it the pyctcdecode column says so and the rest runs.

Inputs are synthetic CTC outputs: a random label is laid out as runs of frames with blanks
between, turned into logits (``strength`` on the path, Gaussian noise everywhere) and
normalized. "peaky" looks like a trained model (strength 10; mean top-class probability about
0.95), "hard" is ambiguous (strength 5; about 0.6).
For every setting it prints the median milliseconds per utterance (thread CPU time, single
thread, one call per utterance, inputs already in each decoder's format) and the agreement: the
share of utterances whose text is identical to an exact search (our prefix beam search with beam
1024; pyctcdecode's output is compared after collapsing runs of spaces, which it cannot output).
crnn_ocr and fast-ctc-decode take turns on every utterance (``--reps`` times), so load changes
hit both alike; the ratio columns are crnn_ocr / fast-ctc-decode. crnn_ocr defers a result's
exact score and spans to their first access: "text" reads only the text (what fast-ctc-decode
returns), "+ spans" the text and the spans (what fast-ctc-decode returns: text and path), "+ score,
spans" the exact score too. The header says whether the optional compiled kernels (numba, the
``fast`` extra; ``CRNN_OCR_NUMBA=0`` turns them off) were on. The batch table times one ``decode_batch`` of 64
word-like utterances against 64 calls of fast-ctc-decode. pyctcdecode runs in its own process,
not interleaved.
"""

from __future__ import annotations

import argparse
import os
import statistics
import string
import time
from collections.abc import Callable
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # single thread for every decoder (shared machine)

import numpy as np  # noqa: E402

from crnn_ocr.alphabet import Alphabet  # noqa: E402
from crnn_ocr.decoding import CTCDecoder, kernels, log_softmax  # noqa: E402

EXACT_BEAM = 1024
SETTINGS = {  # name: (T, alphabet symbols, label length range)
    "word": (26, string.digits + string.ascii_lowercase, (3, 10)),
    "speech": (200, string.ascii_lowercase + "' ", (40, 70)),
    "long": (800, string.ascii_lowercase + "' ", (160, 280)),
}
KINDS = {"peaky": 10.0, "hard": 5.0}
STABILITY_BEAM = 256  # how settled the reference is: agreement of this beam with EXACT_BEAM
BATCH = 64  # utterances in a recognizer's batch


def synth(rng: np.random.Generator, T: int, C: int, length: tuple[int, int], strength: float) -> np.ndarray:
    """(T, C) float32 log-probs of a model reading a random label of about ``length`` symbols."""
    L = int(rng.integers(*length))
    label = rng.integers(1, C, size=L)
    path = np.zeros(T, dtype=np.intp)
    # Frames per symbol and per gap, scaled to fill T.
    runs = rng.integers(1, 4, size=2 * L + 1).astype(float)
    runs = np.maximum(1, np.floor(runs * T / runs.sum())).astype(int)
    t = 0
    for i, r in enumerate(runs):
        if t >= T:
            break
        path[t : t + r] = 0 if i % 2 == 0 else label[i // 2]
        t += r
    logits = rng.normal(size=(T, C)) * 1.5
    logits[np.arange(T), path] += strength
    return log_softmax(logits).astype(np.float32)


def timed(fn: Callable[[np.ndarray], str], inputs: list[np.ndarray]) -> tuple[float, list[str]]:
    fn(inputs[0])  # warm-up
    times, texts = [], []
    for x in inputs:
        t0 = time.perf_counter()
        texts.append(fn(x))
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times), texts


def interleaved(fns: list[Callable[[np.ndarray], str]], inputs: list[np.ndarray], reps: int) -> list[tuple[float, list[str]]]:
    """Per decoder: (median ms of thread CPU time per call, texts of the last repetition). The
    decoders take turns on each input (the first to go alternates), so load changes hit all
    alike; ``inputs[k]`` is what decoder k is given (``inputs`` is a list of per-decoder lists)."""
    for fn, xs in zip(fns, inputs):
        fn(xs[0])  # warm-up
    times: list[list[float]] = [[] for _ in fns]
    texts: list[list[str]] = [[] for _ in fns]
    for rep in range(reps):
        for j in range(len(inputs[0])):
            for k in (range(len(fns)) if (rep + j) % 2 == 0 else reversed(range(len(fns)))):
                t0 = time.thread_time()
                text = fns[k](inputs[k][j])
                times[k].append(time.thread_time() - t0)
                if rep == reps - 1:
                    texts[k].append(text)
    return [(1e3 * statistics.median(t), x) for t, x in zip(times, texts)]


def agreement(texts: list[str], exact: list[str], squash: bool = False) -> float:
    norm = (lambda s: " ".join(s.split())) if squash else (lambda s: s)
    return 100.0 * sum(norm(a) == norm(b) for a, b in zip(texts, exact)) / len(exact)


def pyctcdecode_runs(python: str, labels: list[str], inputs: list[np.ndarray], beams: list[int]) -> dict[int, tuple[float, list[str]]]:
    """beam -> (median ms, texts) of pyctcdecode on ``inputs``, run by ``python`` (its own venv)."""
    import json
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "inputs.npz"
        np.savez(path, labels=np.array(labels), beams=np.array(beams), **{f"lp_{i}": x for i, x in enumerate(inputs)})
        out = subprocess.run([python, str(Path(__file__).with_name("pyctcdecode_worker.py")), str(path)],
                             capture_output=True, text=True, check=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return {r["beam"]: (r["median_ms"], r["texts"]) for r in rows}


def bench_search(args: argparse.Namespace) -> None:
    import fast_ctc_decode

    has_pyctc = os.path.exists(args.pyctcdecode_python)
    counts = {"word": 200, "speech": 40, "long": 8} if not args.quick else {"word": 20, "speech": 4, "long": 2}
    beams = [10, 25, 100] if not args.quick else [10]
    print(f"## Beam search: median ms per utterance, thread CPU time, interleaved x {args.reps} "
          f"(agreement with exact search, beam {EXACT_BEAM})\n")
    print("| input | T x C | n | beam | crnn_ocr text | + spans | + score, spans | fast-ctc-decode | ratio text | "
          "ratio + spans | ratio + score, spans | pyctcdecode |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(args.seed)
    stability: list[str] = []
    for name, (T, symbols, length) in SETTINGS.items():
        alphabet = Alphabet(symbols)
        C = alphabet.num_classes
        labels = [""] + list(symbols)
        fcd_alphabet = ["N"] + list(symbols)
        for kind, strength in KINDS.items():
            lps = [synth(rng, T, C, length, strength) for _ in range(counts[name])]
            probs = [np.exp(x) for x in lps]
            exact = [CTCDecoder(alphabet, beam_width=EXACT_BEAM).decode(x).text for x in lps]
            py_runs = pyctcdecode_runs(args.pyctcdecode_python, labels, lps, beams) if has_pyctc else {}
            if not args.quick:
                settled = agreement([CTCDecoder(alphabet, beam_width=STABILITY_BEAM).decode(x).text for x in lps], exact)
                mean_top = float(np.mean([np.exp(x).max(axis=1).mean() for x in lps]))
                stability.append(f"{name} {kind}: top-class probability {mean_top:.2f}, beam {STABILITY_BEAM} "
                                 f"agrees with beam {EXACT_BEAM} on {settled:.0f}%")
            for beam in beams:  # each lambda below is called at once, in its own iteration (B023 is a false alarm)
                ours = CTCDecoder(alphabet, beam_width=beam)

                def spans(x: np.ndarray) -> str:
                    r = ours.decode(x)  # noqa: B023
                    _ = r.spans  # deferred until read
                    return r.text

                def full(x: np.ndarray) -> str:
                    r = ours.decode(x)  # noqa: B023
                    _ = r.score, r.spans  # the exact score and spans, deferred until read
                    return r.text

                (t_ours, x_ours), (t_spans, _), (t_full, _), (t_fcd, x_fcd) = interleaved(
                    [lambda x: ours.decode(x).text, spans, full,  # noqa: B023
                     lambda x: fast_ctc_decode.beam_search(x, fcd_alphabet, beam_size=beam, beam_cut_threshold=0.0)[0]],  # noqa: B023
                    [lps, lps, lps, probs], args.reps)
                cells = [
                    f"{t_ours:.2f} ({agreement(x_ours, exact):.0f}%)",
                    f"{t_spans:.2f}",
                    f"{t_full:.2f}",
                    f"{t_fcd:.2f} ({agreement(x_fcd, exact):.0f}%)",
                    f"{t_ours / t_fcd:.2f}x",
                    f"{t_spans / t_fcd:.2f}x",
                    f"{t_full / t_fcd:.2f}x",
                    f"{py_runs[beam][0]:.2f} ({agreement(py_runs[beam][1], exact, squash=True):.0f}%)" if has_pyctc
                    else f"n/a (no {args.pyctcdecode_python})",
                ]
                print(f"| {name} {kind} | {T} x {C} | {len(lps)} | {beam} | " + " | ".join(cells) + " |", flush=True)
    if stability:
        print("\nReference check (is the exact search settled?):\n")
        for line in stability:
            print(f"- {line}")


def bench_batch(args: argparse.Namespace) -> None:
    """A recognizer's batch: 64 word-like utterances at beam 10, one ``decode_batch`` against 64
    calls of fast-ctc-decode (and 64 calls of ``decode``), interleaved."""
    import fast_ctc_decode

    T, symbols, length = SETTINGS["word"]
    alphabet = Alphabet(symbols)
    C = alphabet.num_classes
    fcd_alphabet = ["N"] + list(symbols)
    dec = CTCDecoder(alphabet, beam_width=10)
    rng = np.random.default_rng(args.seed + 2)
    n_batches = 10 if not args.quick else 2
    print(f"\n## A batch of {BATCH} word-like utterances ({T} x {C}), beam 10: median ms per batch, "
          f"thread CPU time, {n_batches} batches interleaved x {args.reps}\n")
    print("| input | decode_batch text | decode_batch + score, spans | 64 x decode text | 64 x fast-ctc-decode | ratio batch text | ratio batch + score |")
    print("|---|---|---|---|---|---|---|")
    for kind, strength in KINDS.items():
        batches = [np.stack([synth(rng, T, C, length, strength) for _ in range(BATCH)]) for _ in range(n_batches)]
        probs = [np.exp(b) for b in batches]

        def batch_full(b: np.ndarray) -> str:
            res = dec.decode_batch(b)
            _ = [(r.score, r.spans) for r in res]
            return "|".join(r.text for r in res)

        (t_b, x_b), (t_bf, _), (t_s, x_s), (t_f, _) = interleaved(
            [lambda b: "|".join(r.text for r in dec.decode_batch(b)), batch_full,
             lambda b: "|".join(dec.decode(x).text for x in b),
             lambda b: "|".join(fast_ctc_decode.beam_search(x, fcd_alphabet, beam_size=10, beam_cut_threshold=0.0)[0] for x in b)],
            [batches, batches, batches, probs], args.reps)
        assert x_b == x_s, "decode_batch and decode disagree"
        print(f"| word {kind} | {t_b:.1f} | {t_bf:.1f} | {t_s:.1f} | {t_f:.1f} | {t_b / t_f:.2f}x | {t_bf / t_f:.2f}x |", flush=True)


def bench_lexicon(args: argparse.Namespace) -> None:
    from wordfreq import top_n_list

    alphabet = Alphabet.preset("alphanumeric")
    words = [w for w in top_n_list("en", 70000) if alphabet.try_encode(w) is not None][:50000]
    t0 = time.perf_counter()
    dec = CTCDecoder(alphabet, lexicon=words)
    build_s = time.perf_counter() - t0
    rng = np.random.default_rng(args.seed + 1)
    n = 200 if not args.quick else 60
    truth = [words[int(rng.integers(0, 1000))] if i % 2 else words[int(rng.integers(0, len(words)))] for i in range(n)]
    C = alphabet.num_classes
    lps = []
    for w in truth:
        ids = alphabet.encode(w)
        T = max(26, 3 * len(ids) + 2)
        path = np.zeros(T, dtype=np.intp)
        for i, c in enumerate(ids):
            path[3 * i + 1 : 3 * i + 3] = c
        logits = rng.normal(size=(T, C)) * 1.5
        logits[np.arange(T), path] += 8.0
        if rng.random() < 0.5:  # a misread symbol: a rival wins one character's frames
            i = int(rng.integers(0, len(ids)))
            logits[3 * i + 1 : 3 * i + 3, int(rng.integers(1, C))] += 9.0
        lps.append(log_softmax(logits).astype(np.float32))
    greedy = CTCDecoder(alphabet)
    _, g_texts = timed(lambda x: greedy.decode(x).text, lps)
    lex_times = []
    texts = []
    dec.decode(lps[0])
    for x in lps:
        t1 = time.perf_counter()
        texts.append(dec.decode(x).text)
        lex_times.append(time.perf_counter() - t1)
    ms = np.array(lex_times) * 1e3
    acc = lambda got: 100.0 * sum(a == b for a, b in zip(got, truth)) / n  # noqa: E731
    print("\n## Lexicon decoding, 50k words (wordfreq 'en', alphanumeric), candidates mode, delta = 3\n")
    print("Half the words from the 1000 most frequent (short: thousands of candidates within delta),")
    print("half uniform; half the inputs misread one symbol. Time per word includes the greedy")
    print("reading, the candidate search and the exact CTC rescoring.\n")
    print("| words | lexicon build | median ms/word | p90 ms/word | accuracy greedy | accuracy lexicon |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {n} | {build_s * 1e3:.0f} ms | {np.median(ms):.2f} | {np.percentile(ms, 90):.2f} | "
        f"{acc(g_texts):.0f}% | {acc(texts):.0f}% |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a few utterances, beam 10 only, no reference check (a smoke run)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of the interleaved timing")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=["search", "batch", "lexicon"], default=None)
    ap.add_argument("--pyctcdecode-python", default=".bench-venv/bin/python",
                    help="python of a venv with pyctcdecode and numpy<2 (see the docstring)")
    args = ap.parse_args()
    load = os.getloadavg()
    compiled = kernels.get() is not None
    if compiled:  # compile (or load from numba's cache) before anything is timed
        rng = np.random.default_rng(1)
        for T, strength in ((30, 5.0), (800, 10.0), (800, 5.0)):
            r = CTCDecoder(Alphabet(string.ascii_lowercase), beam_width=4).decode(synth(rng, T, 27, (3, T // 4), strength))
            _ = r.score, r.spans
    print(f"# bench_decoder ({'quick' if args.quick else 'full'}), load average at start: {load[0]:.2f} (cores: {os.cpu_count()}), "
          f"compiled kernels (numba): {'on' if compiled else 'off'}\n")
    if args.only in (None, "search"):
        bench_search(args)
    if args.only in (None, "batch"):
        bench_batch(args)
    if args.only in (None, "lexicon"):
        bench_lexicon(args)
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
