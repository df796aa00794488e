"""Deployment benchmark: crnn_ocr (torch fp32 / bf16, onnxruntime fp32 / int8) against Tesseract 5
and RapidOCR's PP-OCRv4 recognizer, on the same word images, in one run.

    .venv/bin/python bench/bench_deploy.py --checkpoint runs/en/run1/best.pt [--threads 1]
        [--clean 300] [--synth 300] [--iiit 500] [--batch-size 64] [--markdown out.md]

Word sets (written as PNG/JPG files under a temporary folder, the same files for every engine):
- clean: dictionary words (iiit5k labels when wordfreq and /usr/share/dict are absent) in mixed
  case, black on white DejaVu Sans at 32 px;
- synth: datasets/synth_text.py samples (fonts, colours, rotation, blur, noise), seed 7_000_001
  (not the training seeds);
- iiit5k: the first N crops of the held-out test split of ../shared/data/text/iiit5k_train.tsv
  (``bench/split_iiit5k.py``: by photo, seed 0; no model here trained or was selected on it), when present.

Per engine and set: per-image latency (one file at a time, path -> text, median ms), batched
throughput (images/s over the whole set: crnn_ocr's ``read_files`` with decoding threads,
Tesseract's list mode, RapidOCR's batched ``text_rec``), accuracy (exact match after lower-casing
and dropping all but [0-9a-z]: the case-insensitive alphanumeric protocol; the model reads that
alphabet) and agreement with torch fp32's text. int8 and bf16 also get the mean per-image max
|log-prob difference| from fp32. Two int8 exports: dynamic int8 LSTM/linear weights only, and the
same plus static int8 convolutions calibrated on ``--calibration`` other synth_text images.
Batched passes run twice and the second is timed (per-shape kernel set-up is not counted). Cold start: wall time of a fresh process reading one image
(``tools/infer.py``; ``tesseract img stdout``; python + RapidOCR + one call).

Every engine gets ``--threads`` compute threads (torch.set_num_threads, onnxruntime intra-op,
OMP_THREAD_LIMIT for Tesseract, RapidOCR's intra_op_num_threads). Tesseract and RapidOCR are
optional and never dependencies of crnn_ocr: ``apt-get install tesseract-ocr``; RapidOCR needs
numpy < 2, so it runs in its own venv (``--rapidocr-python``, default
/work/.bench-venv-rapidocr/bin/python: ``python -m venv V && V/bin/pip install "numpy<2"
rapidocr-onnxruntime``). Missing ones are skipped with a note. Run on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
ROOT = Path(__file__).resolve().parents[1]

import numpy as np  # noqa: E402

DEFAULT_RAPIDOCR_PYTHON = "/work/.bench-venv-rapidocr/bin/python"
IIIT_TSV = ROOT.parent / "shared" / "data" / "text" / "iiit5k_train.tsv"
SYNTH_SEED = 7_000_001
CALIBRATION_SEED = 7_000_002  # static int8 calibration images: synth_text, disjoint from every test set


def normalize(text: str) -> str:
    """Case-insensitive alphanumeric protocol: lower-case, keep [0-9a-z] only."""
    return re.sub(r"[^0-9a-z]", "", text.lower())


@dataclass
class WordSet:
    name: str
    paths: list[str]
    labels: list[str]


@dataclass
class Run:
    """One engine on one set."""

    texts: list[str]
    latency_ms: list[float] = field(default_factory=list)  # per image, one at a time
    throughput: float | None = None  # images/s, batched
    logprob_diff: float | None = None  # mean per-image max |log-prob - fp32 log-prob|


# ------------------------------------------------------------------------------------ data
def make_sets(folder: Path, n_clean: int, n_synth: int, n_iiit: int) -> list[WordSet]:
    sets = []
    iiit_rows = []
    if IIIT_TSV.exists():
        from split_iiit5k import split_by_scene

        for line in IIIT_TSV.read_text(encoding="utf-8").splitlines():
            path, _, word = line.partition("\t")
            if word:
                iiit_rows.append((str(IIIT_TSV.parent / path), word))
        iiit_rows = split_by_scene(iiit_rows, 1000, 200)["test"]  # the split bench_english.py reports
    if n_clean:
        words = clean_words() or [w for _, w in iiit_rows if normalize(w) == w.lower()]
        rng = np.random.default_rng(0)
        if not words:  # no word list anywhere: random lower-case strings
            words = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), int(rng.integers(3, 10)))) for _ in range(1000)]
        paths, labels = render_clean_words(folder / "clean", words, _clean_font(), n_clean, rng)
        sets.append(WordSet("clean", paths, labels))
    if n_synth:
        import cv2

        from crnn_ocr.synth.text import iter_samples

        out = folder / "synth"
        out.mkdir()
        paths, labels = [], []
        for i, (img, text) in enumerate(iter_samples(n_synth, seed=SYNTH_SEED, channels=3)):
            paths.append(str(out / f"{i:05d}.png"))
            cv2.imwrite(paths[-1], cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            labels.append(text)
        sets.append(WordSet("synth", paths, labels))
    if n_iiit and iiit_rows:
        rows = iiit_rows[:n_iiit]
        sets.append(WordSet("iiit5k", [p for p, _ in rows], [w for _, w in rows]))
    return sets


def clean_words() -> list[str]:
    """Dictionary words of 2-14 letters/digits (synth_text's word list), for the clean sets."""
    from crnn_ocr.synth.text import load_words

    return [w for w in load_words() if normalize(w) == w.lower() and 2 <= len(w) <= 14]


def render_clean_words(out: Path, words: list[str], font_path: str, count: int, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """``count`` words black on white at 32 px in 48 px tall PNGs under ``out``: 50% lower, 30% Title, 20% UPPER case."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(font_path, 32)
    out.mkdir(parents=True)
    paths, labels = [], []
    for i in range(count):
        word = words[int(rng.integers(len(words)))]
        word = (word.lower(), word.title(), word.upper())[int(rng.choice(3, p=[0.5, 0.3, 0.2]))]
        x0, y0, x1, y1 = font.getbbox(word)
        img = Image.new("L", (x1 - x0 + 16, 48), 255)
        ImageDraw.Draw(img).text((8 - x0, (48 - (y1 - y0)) // 2 - y0), word, font=font, fill=0)
        paths.append(str(out / f"{i:05d}.png"))
        img.save(paths[-1])
        labels.append(word)
    return paths, labels


def _clean_font() -> str:
    for path in ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",):
        if os.path.exists(path):
            return path
    import matplotlib

    return str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")


# ------------------------------------------------------------------------------------ engines
def run_crnn(rec, ws: WordSet, batch_size: int, warmup: int = 20) -> Run:
    for p in ws.paths[:warmup]:
        rec.read(p)
    texts, latency = [], []
    for p in ws.paths:
        t0 = time.perf_counter()
        texts.append(rec.read(p).text)
        latency.append(1000 * (time.perf_counter() - t0))
    sum(1 for _ in rec.read_files(ws.paths, batch_size=batch_size, workers=2))  # warm: per-shape kernel set-up
    t0 = time.perf_counter()
    n = sum(1 for _ in rec.read_files(ws.paths, batch_size=batch_size, workers=2))
    return Run(texts, latency, n / (time.perf_counter() - t0))


def logprob_diff(rec, ref, ws: WordSet) -> float:
    """Mean over images of max |log-prob difference| (each image alone, no padding)."""
    diffs = []
    for p in ws.paths:
        img = ref.prepare(p)
        a, n = ref.log_probs([img])
        b, _ = rec.log_probs([img])
        diffs.append(float(np.abs(a[0, : n[0]] - b[0, : n[0]]).max()))
    return float(np.mean(diffs))


def run_tesseract(ws: WordSet, threads: int, folder: Path) -> Run:
    listing = folder / f"{ws.name}_list.txt"
    listing.write_text("".join(p + "\n" for p in ws.paths))
    env = {**os.environ, "OMP_THREAD_LIMIT": str(threads)}
    cmd = ["tesseract", str(listing), "stdout", "--psm", "7"]
    subprocess.run(cmd, capture_output=True, env=env, check=True)  # warm the page cache
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, env=env, check=True)
    elapsed = time.perf_counter() - t0
    pages = r.stdout.decode("utf-8", "replace").split("\f")  # one page per image, form-feed separated
    texts = [p.strip() for p in pages[: len(ws.paths)]]
    if len(texts) != len(ws.paths):
        raise RuntimeError(f"tesseract returned {len(pages)} pages for {len(ws.paths)} images")
    per_image = 1000 * elapsed / len(ws.paths)  # list mode: one process, start-up amortized
    return Run(texts, [per_image] * len(ws.paths), len(ws.paths) / elapsed)


RAPIDOCR_WORKER = r"""
import json, sys, time
args = json.loads(sys.stdin.read())
import cv2
from rapidocr_onnxruntime import RapidOCR
engine = RapidOCR(intra_op_num_threads=args["threads"], inter_op_num_threads=1)
def read(path):
    result, _ = engine(path, use_det=False, use_cls=False, use_rec=True)
    return result[0][0] if result else ""
paths = args["paths"]
if args.get("cold"):
    print(json.dumps({"texts": [read(paths[0])]}))
    sys.exit(0)
for p in paths[:20]:
    read(p)
texts, latency = [], []
for p in paths:
    t0 = time.perf_counter()
    texts.append(read(p))
    latency.append(1000 * (time.perf_counter() - t0))
engine.text_rec.rec_batch_num = args["batch_size"]
engine.text_rec([cv2.imread(p) for p in paths])  # warm
t0 = time.perf_counter()
images = [cv2.imread(p) for p in paths]
engine.text_rec(images)
throughput = len(paths) / (time.perf_counter() - t0)
print(json.dumps({"texts": texts, "latency_ms": latency, "throughput": throughput}))
"""


def run_rapidocr(python: str, ws: WordSet, threads: int, batch_size: int) -> Run:
    r = subprocess.run([python, "-c", RAPIDOCR_WORKER], input=json.dumps(
        {"paths": ws.paths, "threads": threads, "batch_size": batch_size}), capture_output=True, text=True, check=True)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    return Run(out["texts"], out["latency_ms"], out["throughput"])


def cold_start(cmd: list[str], env: dict | None = None, stdin: str | None = None, repeats: int = 3) -> float:
    """Median wall seconds of a fresh process (after one untimed run that warms the page cache)."""
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, env=env, input=stdin, text=True, check=True)
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


# ------------------------------------------------------------------------------------ report
def accuracy(texts: list[str], labels: list[str]) -> float:
    return sum(normalize(t) == normalize(lab) for t, lab in zip(texts, labels)) / max(len(labels), 1)


def agreement(texts: list[str], ref: list[str]) -> float:
    return sum(a == b for a, b in zip(texts, ref)) / max(len(ref), 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a trained crnn_ocr text checkpoint (.pt)")
    p.add_argument("--clean", type=int, default=300, help="clean rendered words (0: skip)")
    p.add_argument("--synth", type=int, default=300, help="synth_text words (0: skip)")
    p.add_argument("--iiit", type=int, default=500, help="IIIT5K train images, when present (0: skip)")
    p.add_argument("--threads", type=int, default=1, help="compute threads for every engine")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--calibration", type=int, default=200, help="synth_text images to calibrate the int8 convolutions on")
    p.add_argument("--rapidocr-python", default=DEFAULT_RAPIDOCR_PYTHON)
    p.add_argument("--skip", nargs="*", default=[], choices=["bf16", "tesseract", "rapidocr", "cold"])
    p.add_argument("--markdown", help="also write the report here")
    a = p.parse_args()

    import torch

    from crnn_ocr.deploy.export import export_onnx
    from crnn_ocr.recognizer import load_recognizer
    from crnn_ocr.synth.text import iter_samples

    torch.set_num_threads(a.threads)
    lines: list[str] = []
    say = lambda s="": (print(s, flush=True), lines.append(s))  # noqa: E731
    notes = []
    with tempfile.TemporaryDirectory(prefix="bench_deploy_") as tmp_name:
        tmp = Path(tmp_name)
        sets = make_sets(tmp, a.clean, a.synth, a.iiit)
        onnx32, onnx8, onnx8s = tmp / "model.onnx", tmp / "model.int8.onnx", tmp / "model.int8s.onnx"
        export_onnx(a.checkpoint, onnx32)
        export_onnx(a.checkpoint, onnx8, int8=True)
        calibration = [img for img, _ in iter_samples(a.calibration, seed=CALIBRATION_SEED, channels=3)]
        export_onnx(a.checkpoint, onnx8s, int8=True, calibration=calibration)
        engines = {
            "crnn_ocr torch fp32": load_recognizer(a.checkpoint, backend="torch", device="cpu"),
            "crnn_ocr torch bf16": None if "bf16" in a.skip else load_recognizer(a.checkpoint, backend="torch", device="cpu",
                                                                                 precision="bf16"),
            "crnn_ocr onnxruntime fp32": load_recognizer(onnx32, threads=a.threads),
            "crnn_ocr onnxruntime int8": load_recognizer(onnx8, threads=a.threads),
            "crnn_ocr onnxruntime int8 + int8 convs": load_recognizer(onnx8s, threads=a.threads),
        }
        engines = {k: v for k, v in engines.items() if v is not None}
        ref = engines["crnn_ocr torch fp32"]
        have_tess = "tesseract" not in a.skip and shutil.which("tesseract") is not None
        have_rapid = "rapidocr" not in a.skip and os.path.exists(a.rapidocr_python)
        if "tesseract" not in a.skip and not have_tess:
            notes.append("Tesseract skipped: no `tesseract` on PATH (apt-get install tesseract-ocr).")
        if "rapidocr" not in a.skip and not have_rapid:
            notes.append(f"RapidOCR skipped: no {a.rapidocr_python}.")

        results: dict[str, dict[str, Run]] = {}
        for ws in sets:
            res: dict[str, Run] = {}
            for name, rec in engines.items():
                res[name] = run_crnn(rec, ws, a.batch_size)
                if "bf16" in name or "int8" in name:
                    base = engines["crnn_ocr onnxruntime fp32"] if "onnx" in name else ref
                    res[name].logprob_diff = logprob_diff(rec, base, ws)
            if have_tess:
                res["Tesseract 5 (list mode)"] = run_tesseract(ws, a.threads, tmp)
            if have_rapid:
                res["RapidOCR PP-OCRv4 rec"] = run_rapidocr(a.rapidocr_python, ws, a.threads, a.batch_size)
            results[ws.name] = res

        cold: dict[str, float] = {}
        if "cold" not in a.skip and sets:
            one = sets[0].paths[0]
            env = {**os.environ, "OMP_NUM_THREADS": str(a.threads)}
            infer = [sys.executable, str(ROOT / "tools" / "infer.py"), "--image", one, "--threads", str(a.threads)]
            cold["crnn_ocr infer.py, torch (.pt)"] = cold_start(infer + ["--checkpoint", a.checkpoint], env)
            cold["crnn_ocr infer.py, onnxruntime (.onnx)"] = cold_start(infer + ["--checkpoint", str(onnx32)], env)
            cold["crnn_ocr infer.py, no --checkpoint (the shipped model)"] = cold_start(infer, env)
            if have_tess:
                cold["tesseract IMG stdout --psm 7"] = cold_start(["tesseract", one, "stdout", "--psm", "7"],
                                                                  {**os.environ, "OMP_THREAD_LIMIT": str(a.threads)})
            if have_rapid:
                cold["python + RapidOCR + one image"] = cold_start(
                    [a.rapidocr_python, "-c", RAPIDOCR_WORKER], stdin=json.dumps({"paths": [one], "threads": a.threads, "cold": True}))

    import onnxruntime

    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), platform.processor()) \
        if os.path.exists("/proc/cpuinfo") else platform.processor()
    say(f"`{' '.join(['python', 'bench/bench_deploy.py'] + sys.argv[1:])}`")
    say()
    say(f"{cpu}, {os.cpu_count()} logical CPUs, {a.threads} compute thread(s) per engine; torch {torch.__version__}, "
        f"onnxruntime {onnxruntime.__version__}; model {ref.backend.model.config.arch} ({Path(a.checkpoint).name}); "
        f"batch {a.batch_size} for throughput.")
    say()
    for ws in sets:
        res = results[ws.name]
        say(f"**{ws.name}** ({len(ws.paths)} images)")
        say()
        say("| engine | latency ms/img (median, one at a time) | throughput img/s (batched) | accuracy | same text as torch fp32 | mean max abs log-prob diff |")
        say("|---|---|---|---|---|---|")
        ref_texts = res["crnn_ocr torch fp32"].texts
        for name, run in res.items():
            same = f"{agreement(run.texts, ref_texts):.1%}" if name.startswith("crnn_ocr") else ""
            diff = f"{run.logprob_diff:.3g}" if run.logprob_diff is not None else ""
            say(f"| {name} | {statistics.median(run.latency_ms):.2f} | {run.throughput:.0f} | "
                f"{accuracy(run.texts, ws.labels):.1%} | {same} | {diff} |")
        say()
    if cold:
        say("| cold start: fresh process, one image | seconds (median of 3) |")
        say("|---|---|")
        for name, s in cold.items():
            say(f"| {name} | {s:.2f} |")
        say()
    for n in notes:
        say(n)
    if a.markdown:
        Path(a.markdown).write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
