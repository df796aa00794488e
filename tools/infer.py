#!/usr/bin/env python
"""Read words from images with a trained checkpoint.

    python tools/infer.py --image word.png --checkpoint runs/crnn/best.pt
    python tools/infer.py --image crops/ 'scans/*.jpg' --checkpoint best.pt --lexicon words.txt --json

Prints one line per image: path, text, confidence (tab-separated), or JSON lines with --json.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from crnn_ocr.cli import ArgumentParser, UsageError, existing_file, expand_inputs, run_cli  # noqa: E402


def parse_args(argv: list[str] | None):
    p = ArgumentParser(prog="infer.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--image", nargs="+", required=True, help="image files, folders or glob patterns")
    p.add_argument("--checkpoint", help="a crnn_ocr checkpoint (.pt)")
    p.add_argument("--lexicon", help="word list, one per line: output is constrained to these words")
    p.add_argument("--lexicon-mode", default="auto", choices=["auto", "score", "candidates", "trie"])
    p.add_argument("--max-edit-distance", type=int, default=3, help="candidate radius for large lexicons")
    p.add_argument("--beam", type=int, default=1, help="beam width (1 = greedy best path)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--json", action="store_true", help="one JSON object per line: text, confidence, score, spans")
    p.add_argument("--visualize", help="draw symbol spans: a PNG file for one image, else a folder")
    p.add_argument("--device", help="cpu, cuda (default: CUDA if present)")
    args = p.parse_args(argv)
    if args.beam < 1:
        p.error(f"--beam must be at least 1, got {args.beam}")
    if args.batch_size < 1:
        p.error(f"--batch-size must be at least 1, got {args.batch_size}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    paths = expand_inputs(args.image)
    if args.checkpoint is None:
        raise UsageError("--checkpoint: no checkpoint given (train one with tools/train.py)")
    existing_file(args.checkpoint, "checkpoint")
    if args.lexicon:
        existing_file(args.lexicon, "lexicon")

    import json

    import cv2

    from crnn_ocr.recognizer import Recognizer

    rec = Recognizer.from_checkpoint(
        args.checkpoint, device=args.device, expected_kind=None, beam_width=args.beam, lexicon=args.lexicon,
        lexicon_mode=args.lexicon_mode, max_edit_distance=args.max_edit_distance,
    )
    if rec.kind != "text" and rec.kind != "score":
        raise UsageError(f"{args.checkpoint}: is a {rec.kind} model, it cannot read images")
    results = []
    for start in range(0, len(paths), args.batch_size):
        chunk = paths[start : start + args.batch_size]
        prepared = []
        for path in chunk:
            try:
                prepared.append(rec.prepare(path))
            except ValueError as e:
                raise UsageError(str(e)) from None
        log_probs, lengths = rec.log_probs(prepared)
        for path, img, res, n in zip(chunk, prepared, rec.decoder.decode_batch(log_probs, lengths), lengths):
            results.append((path, img, res, int(n)))
            if args.json:
                print(json.dumps({"path": path, "text": res.text, "confidence": round(res.confidence, 6),
                                  "score": round(res.score, 6), "token_ids": list(res.token_ids),
                                  "spans": [list(s) for s in res.spans]}, ensure_ascii=False))
            else:
                print(f"{path}\t{res.text}\t{res.confidence:.4f}")
    if args.visualize:
        from crnn_ocr.visualize import draw_spans

        single = len(results) == 1 and args.visualize.lower().endswith(".png")
        if not single:
            os.makedirs(args.visualize, exist_ok=True)
        for path, img, res, n in results:
            symbols = [rec.alphabet.symbol_of(i) for i in res.token_ids]
            canvas = draw_spans(img, res, n, symbols)
            out = args.visualize if single else os.path.join(args.visualize, os.path.splitext(os.path.basename(path))[0] + ".png")
            cv2.imwrite(out, cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    return 0


if __name__ == "__main__":
    run_cli(main)
