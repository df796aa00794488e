#!/usr/bin/env python
"""Build a standard-layout LMDB (num-samples, image-%09d, label-%09d) from images or audio on disk.

    python tools/create_lmdb.py --out lmdb/train --labels gt.txt [--root images/]
    python tools/create_lmdb.py --out lmdb/train --folder images/
    python tools/create_lmdb.py --out lmdb/yesno --labels yesno/labels.tsv   # audio<TAB>transcript

Audio (WAV, FLAC, OGG, ...: ``--audio``, or automatic when every listed file has an audio
extension) is stored byte for byte under the ``image-%09d`` keys, the transcript under
``label-%09d``; ``--check`` decodes each file to make sure it is readable audio.

``--labels``: ``path<TAB>label`` lines (deep-text-recognition-benchmark's gt.txt); paths are
relative to ``--root`` (default: the label file's folder). ``--folder``: every image below the
folder, labelled by a sibling ``.txt`` file or else by its name (``word_12.png`` -> ``word``).
Undecodable or missing images are skipped and counted. Exit status: 0 written, 1 nothing
usable to write, 2 bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass

from crnn_ocr.cli import ArgumentParser, UsageError, run_cli

PROG = "create_lmdb"


@dataclass
class CreateLmdbConfig:
    out: str
    labels: str | None = None
    root: str | None = None
    folder: str | None = None
    check: bool = True
    overwrite: bool = False
    media: str = "auto"


def parse_args(argv: list[str] | None = None) -> CreateLmdbConfig:
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output LMDB folder")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--labels", help="path<TAB>label file (gt.txt)")
    src.add_argument("--folder", help="folder of images labelled by sibling .txt files or file names")
    p.add_argument("--root", help="folder the --labels paths are relative to (default: the label file's folder)")
    p.add_argument("--no-check", dest="check", action="store_false", help="do not decode images to validate them")
    p.add_argument("--overwrite", action="store_true", help="replace an existing LMDB at --out")
    p.add_argument("--audio", action="store_true",
                   help="the files are audio (default: audio when every file has an audio extension)")
    a = p.parse_args(argv)
    if a.root and not a.labels:
        p.error("--root goes with --labels")
    return CreateLmdbConfig(a.out, a.labels, a.root, a.folder, a.check, a.overwrite, "audio" if a.audio else "auto")


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    if os.path.exists(cfg.out) and not os.path.isdir(cfg.out):
        raise UsageError(f"{cfg.out}: is a file, expected an LMDB folder (--out)")
    from crnn_ocr.data import create_lmdb_from_folder, create_lmdb_from_label_file

    if cfg.labels:
        stats = create_lmdb_from_label_file(cfg.out, cfg.labels, root=cfg.root, check=cfg.check, overwrite=cfg.overwrite,
                                            media=cfg.media)
    else:
        stats = create_lmdb_from_folder(cfg.out, cfg.folder, check=cfg.check, overwrite=cfg.overwrite, media=cfg.media)
    if stats.written == 0:
        print(f"{PROG}: error: {stats.summary()}", file=sys.stderr)
        return 1
    print(stats.summary())
    return 0


if __name__ == "__main__":
    run_cli(main, prog=PROG)
