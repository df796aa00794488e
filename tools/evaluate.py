#!/usr/bin/env python
"""Evaluate a checkpoint on labelled images: word accuracy, CER, 1-NED, ms per image.

    python tools/evaluate.py --checkpoint best.pt --data lmdb/val
    python tools/evaluate.py --checkpoint best.pt --labels gt.txt --root images/ --lexicon words.txt
    python tools/evaluate.py --checkpoint PP-OCRv6_rec_small.onnx --labels gt.txt --beam 10   # a PaddleOCR recognizer
    python tools/evaluate.py --data lmdb/test --views          # each image read ten ways (crnn_ocr.views)

Exit status: 0 every sample read; 1 some images could not be decoded (skipped, counted and the
first few named in the summary; the metrics cover the rest); 2 bad arguments or files.
"""

from __future__ import annotations

from crnn_ocr.cli import ArgumentParser, UsageError, existing_file, model_files, run_cli


def parse_args(argv: list[str] | None):
    p = ArgumentParser(prog="evaluate.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", help="a crnn_ocr checkpoint (.pt), an exported .onnx model or a PaddleOCR recognition "
                   ".onnx file (default: the shipped English model)")
    p.add_argument("--preset", choices=["ppocr"], help="read --checkpoint as a PaddleOCR (PP-OCR) recognizer")
    p.add_argument("--alphabet", help="a foreign model's characters, one a line (PaddleOCR's dict file), when its file lacks them")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="an LMDB in the standard layout")
    src.add_argument("--labels", help="a path<TAB>label file")
    p.add_argument("--root", help="folder the --labels paths are relative to (default: the label file's folder)")
    p.add_argument("--lexicon", help="word list: constrain output to these words")
    p.add_argument("--beam", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--limit", type=int, help="evaluate only the first N samples")
    p.add_argument("--predictions", help="write name, reference, prediction, confidence as TSV here")
    p.add_argument("--views", action="store_true", help="read each image under test-time views (crnn_ocr.views): ten "
                   "forward passes per image, the reading they agree on")
    p.add_argument("--no-recheck", action="store_true", help="read every image once, without the model's second look at "
                   "unsure words (crnn_ocr.views.Recheck; the english model has one)")
    p.add_argument("--device")
    args = p.parse_args(argv)
    if args.beam < 1:
        p.error(f"--beam must be at least 1, got {args.beam}")
    if (args.preset or args.alphabet) and not args.checkpoint:
        p.error("--preset and --alphabet describe a foreign model: give its file with --checkpoint")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.checkpoint = model_files(args.checkpoint, args.lexicon, "text")
    import itertools

    from crnn_ocr.data import iter_lmdb_samples, read_label_file
    from crnn_ocr.evaluation import evaluate
    from crnn_ocr.recognizer import load_recognizer

    if args.data:
        samples = ((f"{args.data}#{i}", img, label) for i, img, label in iter_lmdb_samples(args.data))
    else:
        samples = ((str(path), path, label) for path, label in read_label_file(args.labels, args.root))
    if args.limit:
        samples = itertools.islice(samples, args.limit)
    if args.alphabet:
        existing_file(args.alphabet, "alphabet")
    rec = load_recognizer(args.checkpoint, device=args.device, preset=args.preset, alphabet=args.alphabet,
                          recheck=not args.no_recheck, beam_width=args.beam, lexicon=args.lexicon)
    if rec.kind not in ("text", "score"):
        raise UsageError(f"{args.checkpoint}: is a {rec.kind} model, it cannot read images")
    from crnn_ocr.views import DEFAULT_VIEWS, check_frontend

    if args.views:
        try:
            check_frontend(rec.frontend)
        except ValueError as e:
            raise UsageError(f"--views: {args.checkpoint}: {e}") from None

    result = evaluate(rec, samples, batch_size=args.batch_size, views=DEFAULT_VIEWS if args.views else None)
    if args.predictions:
        with open(args.predictions, "w", encoding="utf-8") as f:
            for name, ref, pred, conf in result.predictions:
                f.write(f"{name}\t{ref}\t{pred}\t{conf:.4f}\n")
    print(result.summary())
    return 1 if result.skipped else 0  # 1: some images could not be read (named in the summary)


if __name__ == "__main__":
    run_cli(main)
