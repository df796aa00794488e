"""How tightly clips are cut at their ends: the level of each clip's first and last 10 ms under its
loudest 10 ms, per LMDB.

    python bench/bench_edges.py data/clips/fsdd_george data/clips/fsdd_nicolas data/clips/tts

A recording trimmed of its silence with a loose threshold starts and ends 30-40 dB under its peak
(silence, or the quiet start of a consonant); one trimmed tightly starts inside its first sound,
10-20 dB under. Prints a Markdown table per LMDB: the median level of the first and last frame
(dB under the loudest), and the share of clips whose first (last) frame is within 20 dB of it.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from crnn_ocr.data import iter_lmdb_samples
from crnn_ocr.speech.audio import frame_rms, load_audio

FRAME_MS = 10.0


def edge_levels(wave: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """(first, last) 10 ms frame's RMS level in dB relative to the loudest frame (<= 0)."""
    rms, _ = frame_rms(wave, sample_rate, FRAME_MS)  # (n,)
    if not len(rms):
        return 0.0, 0.0
    db = 20 * np.log10(np.maximum(rms, 1e-10) / max(rms.max(), 1e-10))
    return float(db[0]), float(db[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("lmdbs", nargs="+", help="audio LMDBs (tools/create_lmdb.py, datasets/audio_clips.py, concat_digits.py)")
    p.add_argument("--sample-rate", type=int, default=8000)
    a = p.parse_args(argv)
    print("| LMDB | clips | first 10 ms, median dB under the peak | last 10 ms | first within 20 dB | last within 20 dB |")
    print("|---|---:|---:|---:|---:|---:|")
    for path in a.lmdbs:
        levels = np.array([edge_levels(load_audio(bytes(data), target_rate=a.sample_rate), a.sample_rate)
                           for _, data, _ in iter_lmdb_samples(path)]).reshape(-1, 2)  # (N, 2)
        if not len(levels):
            print(f"| {path} | 0 | - | - | - | - |")
            continue
        first, last = levels[:, 0], levels[:, 1]
        print(f"| {path} | {len(levels)} | {np.median(first):.1f} | {np.median(last):.1f} | "
              f"{np.mean(first > -20):.2f} | {np.mean(last > -20):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
