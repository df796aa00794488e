"""Run pyctcdecode on saved CTC outputs, in a venv of its own (pyctcdecode pins numpy < 2).

    .bench-venv/bin/python bench/pyctcdecode_worker.py inputs.npz

``inputs.npz`` (written by ``bench/bench_decoder.py``): ``labels`` (the decoder's labels, "" for
the blank first) and ``lp_0 .. lp_{n-1}`` (T, C) log-probs, ``beams``; prints one JSON object per
beam: ``{"beam", "median_ms", "texts"}``. Imports numpy and pyctcdecode only (not crnn_ocr).
"""

from __future__ import annotations

import json
import logging
import statistics
import sys
import time

import numpy as np
from pyctcdecode import build_ctcdecoder


def main() -> None:
    data = np.load(sys.argv[1])
    labels = [str(s) for s in data["labels"]]
    inputs = [data[f"lp_{i}"] for i in range(sum(k.startswith("lp_") for k in data.files))]
    logging.getLogger("pyctcdecode").setLevel(logging.ERROR)
    decoder = build_ctcdecoder(labels)
    for beam in data["beams"].tolist():
        decoder.decode_beams(inputs[0], beam_width=beam)  # warm-up
        times, texts = [], []
        for x in inputs:
            t0 = time.perf_counter()
            texts.append(decoder.decode_beams(x, beam_width=beam)[0][0])
            times.append(time.perf_counter() - t0)
        print(json.dumps({"beam": beam, "median_ms": 1e3 * statistics.median(times), "texts": texts}), flush=True)


if __name__ == "__main__":
    main()
