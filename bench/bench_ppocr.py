#!/usr/bin/env python
"""PP-OCRv6 small through crnn_ocr's decoder against our shipped model and Tesseract, on real
word crops: greedy (what PaddleOCR does), beam 10, 50-word lexicons, int8; and what beam-search
pruning changes with 18,710 classes (the first ``--prune-crops`` crops of each set).

    .venv/bin/python bench/bench_ppocr.py [--model PP-OCRv6_rec_small.onnx | --wheel rapidocr-3.10.0-py3-none-any.whl]
        [--limit N] [--prune-crops 300] [--markdown out.md]

The model file never ships with crnn_ocr: ``--model``, else ``$CRNN_OCR_PPOCR_MODEL``, else
the one inside an installed ``rapidocr`` package, else the one inside the wheel ``--wheel``
(``find_ppocr_model``; RapidOCR 3.10 ships PP-OCRv6_rec_small.onnx, Apache-2.0).

Data: the held-out IIIT5K test split (``bench/split_iiit5k.py``: 1001 crops of
``../shared/data/text/iiit5k_train.tsv``, by photo, seed 0; or ``--iiit TSV``) and the ICDAR
2015 training crops whose label is alphanumeric (``../shared/data/text/ic15_train.tsv``: 4055 of
4468; ``--ic15 TSV``). Protocol: case-insensitive alphanumeric word accuracy (both strings
lower-cased, all but ``[0-9a-z]`` dropped). The 50-word lexicon of a crop is its word and 49
distractors from wordfreq's top 30,000 (seed = crop index, as ``bench_english.py``); both models
are cased, so each lexicon word is given in three spellings (``house``, ``HOUSE``, ``House``).

Timing, one thread (onnxruntime ``threads=1``): each crop is read alone; ms per word is the
mean of decode file + resize + forward (measured once per model) plus the row's own CTC
decoding (measured per row). Tesseract (``tesseract`` on PATH) runs as one process over a list
file, psm 7; without it its row is left out and said so.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from bench_english import run_tesseract, small_lexicons, tesseract_version  # noqa: E402
from crnn_ocr.decoding import CTCDecoder  # noqa: E402
from crnn_ocr.metrics import normalize_alnum  # noqa: E402
from crnn_ocr.recognizer import Recognizer, load_recognizer  # noqa: E402
from split_iiit5k import DEFAULT_TSV, split_by_scene  # noqa: E402

MODEL_NAME = "PP-OCRv6_rec_small.onnx"
IC15_TSV = DEFAULT_TSV.parent / "ic15_train.tsv"
PRUNES = (None, -20.0, -15.0, -10.0, -5.0)


def find_ppocr_model(model: str | None = None, wheel: str | None = None, folder: Path | None = None) -> Path | None:
    """PP-OCRv6_rec_small.onnx: ``model``, ``$CRNN_OCR_PPOCR_MODEL``, an installed rapidocr, or
    extracted from the ``wheel`` file into ``folder``. Benchmark-only: crnn_ocr never ships it."""
    for candidate in (model, os.environ.get("CRNN_OCR_PPOCR_MODEL")):
        if candidate:
            return Path(candidate) if Path(candidate).is_file() else None
    spec = importlib.util.find_spec("rapidocr")
    if spec is not None and spec.origin:
        found = Path(spec.origin).parent / "models" / MODEL_NAME
        if found.is_file():
            return found
    if wheel and folder is not None:
        with zipfile.ZipFile(wheel) as z:
            member = next((n for n in z.namelist() if n.endswith("/" + MODEL_NAME)), None)
            if member is not None:
                return Path(z.extract(member, folder))
    return None


def load_set(name: str, tsv: Path | None, limit: int | None) -> tuple[list[str], list[str]]:
    """(paths, words) of the IIIT5K test split or the alphanumeric IC15 crops."""
    if name == "iiit5k" and tsv is None:
        rows = [tuple(line.split("\t", 1)) for line in DEFAULT_TSV.read_text(encoding="utf-8").splitlines() if "\t" in line]
        rows = [(str((DEFAULT_TSV.parent / p).resolve()), w) for p, w in rows]
        rows = split_by_scene(rows, 1000, 200)["test"]
    else:
        tsv = tsv or IC15_TSV
        rows = [tuple(line.split("\t", 1)) for line in tsv.read_text(encoding="utf-8").splitlines() if "\t" in line]
        rows = [(p if os.path.isabs(p) else str(tsv.parent / p), w) for p, w in rows]
        if name == "ic15":
            rows = [(p, w) for p, w in rows if re.fullmatch("[A-Za-z0-9]+", w)]
    rows = rows[:limit]
    return [p for p, _ in rows], [w for _, w in rows]


def cased(lexicon: list[str]) -> list[str]:
    """Each word as written, in capitals and capitalized."""
    return list(dict.fromkeys(v for w in lexicon for v in (w, w.upper(), w.capitalize())))


@dataclass
class Row:
    name: str
    texts: list[str] = field(default_factory=list)
    ms: list[float] = field(default_factory=list)


def read_rows(rec: Recognizer, name: str, paths: list[str], lexicons: list[list[str]], beam: int, *,
              extra: Callable[[int, np.ndarray], None] | None = None, greedy_only: bool = False) -> list[Row]:
    """Greedy, beam and 50-word lexicon rows for one model: each crop read alone; ``extra(i, lp)``
    is called on each crop's log-probs (the pruning study)."""
    greedy, wide = CTCDecoder(rec.alphabet), CTCDecoder(rec.alphabet, beam_width=beam)
    rows = [Row(f"{name}, greedy"), Row(f"{name}, beam {beam}"), Row(f"{name}, 50-word lexicon")][: 1 if greedy_only else 3]
    for p in paths[:5]:
        rec.read(p)  # warm-up
    for i, p in enumerate(paths):
        t0 = time.perf_counter()
        lp, n = rec.log_probs([rec.prepare(p)])
        lp = lp[0, : n[0]]
        model_ms = 1000 * (time.perf_counter() - t0)
        decoders = [greedy] if greedy_only else [greedy, wide, CTCDecoder(rec.alphabet, lexicon=cased(lexicons[i]))]
        for row, dec in zip(rows, decoders):
            t0 = time.perf_counter()
            row.texts.append(dec.decode(lp).text)
            row.ms.append(model_ms + 1000 * (time.perf_counter() - t0))
        if extra is not None:
            extra(i, lp)
    return rows


class PruneStudy:
    """Beam search with each ``PRUNES`` threshold against the exact search, on the first ``count`` crops."""

    def __init__(self, alphabet, words: list[str], count: int, beam: int) -> None:
        self.words, self.count = words, count
        self.decoders = {p: CTCDecoder(alphabet, beam_width=beam, prune_log_prob=p) for p in PRUNES}
        self.results: dict[float | None, list] = {p: [] for p in PRUNES}
        self.ms: dict[float | None, list[float]] = {p: [] for p in PRUNES}

    def __call__(self, i: int, lp: np.ndarray) -> None:
        if i >= self.count:
            return
        for p, dec in self.decoders.items():
            t0 = time.perf_counter()
            self.results[p].append(dec.decode(lp))
            self.ms[p].append(1000 * (time.perf_counter() - t0))

    def table(self) -> str:
        exact = self.results[None]
        refs = [normalize_alnum(w) for w in self.words[: len(exact)]]
        lines = ["| prune_log_prob | same text as exact | same score (1e-9) | accuracy | median ms | mean ms |",
                 "|---|---|---|---|---|---|"]
        for p in PRUNES:
            res = self.results[p]
            same = np.mean([a.text == b.text for a, b in zip(res, exact)])
            score = np.mean([abs(a.score - b.score) <= 1e-9 for a, b in zip(res, exact)])
            acc = np.mean([normalize_alnum(r.text) == ref for r, ref in zip(res, refs)])
            lines.append(f"| {'None (exact)' if p is None else p} | {100 * same:.1f}% | {100 * score:.1f}% | {100 * acc:.1f}% "
                         f"| {statistics.median(self.ms[p]):.2f} | {statistics.mean(self.ms[p]):.2f} |")
        return "\n".join(lines)


def accuracy(texts: list[str], words: list[str]) -> float:
    return float(np.mean([normalize_alnum(t) == normalize_alnum(w) for t, w in zip(texts, words)]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help=f"{MODEL_NAME} (default: $CRNN_OCR_PPOCR_MODEL, an installed rapidocr, --wheel)")
    p.add_argument("--wheel", help="a rapidocr wheel to take the model from")
    p.add_argument("--iiit", type=Path, help="path<TAB>word file instead of the IIIT5K test split")
    p.add_argument("--ic15", type=Path, help=f"path<TAB>word file instead of {IC15_TSV} (alphanumeric labels)")
    p.add_argument("--limit", type=int, help="only the first N crops of each set (a quick check)")
    p.add_argument("--beam", type=int, default=10)
    p.add_argument("--prune-crops", type=int, default=300, help="crops of each set for the pruning study")
    p.add_argument("--markdown", help="also write the tables here")
    a = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        model = find_ppocr_model(a.model, a.wheel, Path(tmp))
        if model is None:
            sys.exit(f"bench_ppocr.py: {MODEL_NAME} not found: give --model, --wheel, or pip install rapidocr")
        from crnn_ocr.deploy.export import quantize_foreign

        int8 = quantize_foreign(model, Path(tmp) / "ppocr.int8.onnx")
        sets = {"iiit5k": load_set("iiit5k", a.iiit, a.limit), "ic15": load_set("ic15", a.ic15, a.limit)}
        readers = {"PP-OCRv6 small": load_recognizer(model, threads=1), "crnn_ocr shipped (english)": load_recognizer("english", threads=1)}
        table: dict[str, dict[str, Row]] = {}
        studies: dict[str, PruneStudy] = {}
        for set_name, (paths, words) in sets.items():
            lexicons = small_lexicons(words)
            for name, rec in readers.items():
                extra = None
                if name.startswith("PP-OCR"):
                    extra = studies[set_name] = PruneStudy(rec.alphabet, words, a.prune_crops, a.beam)
                for row in read_rows(rec, name, paths, lexicons, a.beam, extra=extra):
                    table.setdefault(row.name, {})[set_name] = row
                    print(f"{set_name}: {row.name}: {100 * accuracy(row.texts, words):.1f}%, {statistics.mean(row.ms):.2f} ms", flush=True)
            rec8 = load_recognizer(int8, threads=1)
            row = read_rows(rec8, "PP-OCRv6 small int8 (tools/export.py --int8)", paths, lexicons, a.beam, greedy_only=True)[0]
            table.setdefault(row.name, {})[set_name] = row
            print(f"{set_name}: {row.name}: {100 * accuracy(row.texts, words):.1f}%, {statistics.mean(row.ms):.2f} ms", flush=True)
            if shutil.which("tesseract"):
                t = run_tesseract(paths, 7, 1, Path(tmp))
                row = Row(f"Tesseract {tesseract_version()} LSTM, psm 7", t.texts, [t.ms_per_image] * len(paths))
                table.setdefault(row.name, {})[set_name] = row
        text = report(table, sets, studies, model)
    print(text)
    if a.markdown:
        Path(a.markdown).write_text(text, encoding="utf-8")
    return 0


def report(table: dict[str, dict[str, Row]], sets: dict, studies: dict[str, PruneStudy], model: Path) -> str:
    import onnxruntime

    counts = {k: len(v[0]) for k, v in sets.items()}
    lines = [f"{MODEL_NAME} ({model.stat().st_size / 1e6:.0f} MB), onnxruntime {onnxruntime.__version__}, 1 thread; "
             f"IIIT5K test split {counts['iiit5k']} crops, IC15 alphanumeric crops {counts['ic15']}", "",
             "| reader | IIIT5K word accuracy | ms/word | IC15 word accuracy | ms/word |", "|---|---|---|---|---|"]
    for name, per_set in table.items():
        cells = []
        for set_name in ("iiit5k", "ic15"):
            row = per_set.get(set_name)
            cells += ["", ""] if row is None else [f"{100 * accuracy(row.texts, sets[set_name][1]):.1f}%", f"{statistics.mean(row.ms):.1f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if not shutil.which("tesseract"):
        lines.append("\nTesseract: not installed on this machine (no `tesseract` on PATH), so no row.")
    for set_name, study in studies.items():
        lines += ["", f"Beam {study.decoders[None].beam_width} on the first {len(study.results[None])} {set_name} crops, "
                  "each threshold against the exact search (ms: decoding only):", "", study.table()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
