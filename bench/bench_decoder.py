"""Decoder benchmark: crnn_ocr.decoding vs fast-ctc-decode and pyctcdecode (benchmark-only
dependencies), plus lexicon decoding with a 50k-word lexicon.

    .venv/bin/python bench/bench_decoder.py [--quick] [--seed 0] [--pyctcdecode-python .bench-venv/bin/python]

pyctcdecode pins numpy < 2 (OpenCV 5, in the main venv, needs numpy >= 2), so it runs in a venv
of its own, on the same inputs saved to a file (``bench/pyctcdecode_worker.py``); make it once:

    python3 -m venv .bench-venv && .bench-venv/bin/pip install pyctcdecode "numpy<2"

Without it the pyctcdecode column says so and the rest runs.

Inputs are synthetic CTC outputs: a random label is laid out as runs of frames with blanks
between, turned into logits (``strength`` on the path, Gaussian noise everywhere) and
normalized. "peaky" looks like a trained model (strength 10; mean top-class probability about
0.95), "hard" is ambiguous (strength 5; about 0.6).
For every setting it prints the median milliseconds per utterance (single thread, one call per
utterance, inputs already in each decoder's format) and the agreement: the share of utterances
whose text is identical to an exact search (our prefix beam search with beam 1024; pyctcdecode's
output is compared after collapsing runs of spaces, which it cannot output).
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
from crnn_ocr.decoding import CTCDecoder, log_softmax  # noqa: E402

EXACT_BEAM = 1024
SETTINGS = {  # name: (T, alphabet symbols, label length range)
    "word": (26, string.digits + string.ascii_lowercase, (3, 10)),
    "speech": (200, string.ascii_lowercase + "' ", (40, 70)),
    "long": (800, string.ascii_lowercase + "' ", (160, 280)),
}
KINDS = {"peaky": 10.0, "hard": 5.0}
STABILITY_BEAM = 256  # how settled the reference is: agreement of this beam with EXACT_BEAM


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
    counts = {"word": 200, "speech": 40, "long": 8} if not args.quick else {"word": 60, "speech": 12, "long": 3}
    beams = [10, 25, 100]
    print(f"## Beam search: median ms per utterance (agreement with exact search, beam {EXACT_BEAM})\n")
    print("| input | T x C | n | beam | crnn_ocr (exact) | crnn_ocr prune -5 | fast-ctc-decode | pyctcdecode |")
    print("|---|---|---|---|---|---|---|---|")
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
            settled = agreement([CTCDecoder(alphabet, beam_width=STABILITY_BEAM).decode(x).text for x in lps], exact)
            mean_top = float(np.mean([np.exp(x).max(axis=1).mean() for x in lps]))
            stability.append(f"{name} {kind}: top-class probability {mean_top:.2f}, beam {STABILITY_BEAM} "
                             f"agrees with beam {EXACT_BEAM} on {settled:.0f}%")
            for beam in beams:  # each lambda below is called at once, in its own iteration (B023 is a false alarm)
                ours = CTCDecoder(alphabet, beam_width=beam)
                pruned = CTCDecoder(alphabet, beam_width=beam, prune_log_prob=-5.0)
                t_ours, x_ours = timed(lambda x: ours.decode(x).text, lps)  # noqa: B023
                t_prune, x_prune = timed(lambda x: pruned.decode(x).text, lps)  # noqa: B023
                t_fcd, x_fcd = timed(
                    lambda x: fast_ctc_decode.beam_search(x, fcd_alphabet, beam_size=beam, beam_cut_threshold=0.0)[0],  # noqa: B023
                    probs,
                )
                cells = [
                    f"{t_ours:.2f} ({agreement(x_ours, exact):.0f}%)",
                    f"{t_prune:.2f} ({agreement(x_prune, exact):.0f}%)",
                    f"{t_fcd:.2f} ({agreement(x_fcd, exact):.0f}%)",
                    f"{py_runs[beam][0]:.2f} ({agreement(py_runs[beam][1], exact, squash=True):.0f}%)" if has_pyctc
                    else f"n/a (no {args.pyctcdecode_python})",
                ]
                print(f"| {name} {kind} | {T} x {C} | {len(lps)} | {beam} | " + " | ".join(cells) + " |", flush=True)
    print("\nReference check (is the exact search settled?):\n")
    for line in stability:
        print(f"- {line}")


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
    ap.add_argument("--quick", action="store_true", help="fewer utterances (about a minute)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=["search", "lexicon"], default=None)
    ap.add_argument("--pyctcdecode-python", default=".bench-venv/bin/python",
                    help="python of a venv with pyctcdecode and numpy<2 (see the docstring)")
    args = ap.parse_args()
    load = os.getloadavg()
    print(f"# bench_decoder ({'quick' if args.quick else 'full'}), load average at start: {load[0]:.2f} (cores: {os.cpu_count()})\n")
    if args.only in (None, "search"):
        bench_search(args)
    if args.only in (None, "lexicon"):
        bench_lexicon(args)
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
