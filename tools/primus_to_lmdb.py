#!/usr/bin/env python
"""Convert a PrIMuS or Camera-PrIMuS folder tree into a standard-layout LMDB.

    python tools/primus_to_lmdb.py --primus corpus/ --out lmdb/primus --encoding semantic
    python tools/primus_to_lmdb.py --primus Camera-PrIMuS/ --out lmdb/camera --distorted

Every ``<id>/<id>.semantic`` (or ``.agnostic``) is paired with ``<id>/<id>.png`` (with
``--distorted``: ``<id>_distorted.jpg``); labels are the tokens joined by spaces, for a token
alphabet such as PrIMuS's ``vocabulary_semantic.txt``. Missing or undecodable images, empty
labels and images without a label file are skipped and counted. Exit status: 0 written,
1 nothing usable, 2 bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass

from crnn_ocr.cli import ArgumentParser, UsageError, run_cli

PROG = "primus_to_lmdb"


@dataclass
class PrimusToLmdbConfig:
    primus: str
    out: str
    encoding: str = "semantic"
    distorted: bool = False
    check: bool = True
    overwrite: bool = False


def parse_args(argv: list[str] | None = None) -> PrimusToLmdbConfig:
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--primus", required=True, help="PrIMuS root folder (holds <id>/<id>.png + labels)")
    p.add_argument("--out", required=True, help="output LMDB folder")
    p.add_argument("--encoding", default="semantic", choices=["semantic", "agnostic"])
    p.add_argument("--distorted", action="store_true", help="Camera-PrIMuS: use <id>_distorted.jpg")
    p.add_argument("--no-check", dest="check", action="store_false", help="do not decode images to validate them")
    p.add_argument("--overwrite", action="store_true", help="replace an existing LMDB at --out")
    a = p.parse_args(argv)
    return PrimusToLmdbConfig(a.primus, a.out, a.encoding, a.distorted, a.check, a.overwrite)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    if not os.path.isdir(cfg.primus):
        raise UsageError(f"{cfg.primus}: PrIMuS folder not found (--primus)")
    if os.path.exists(cfg.out) and not os.path.isdir(cfg.out):
        raise UsageError(f"{cfg.out}: is a file, expected an LMDB folder (--out)")
    from crnn_ocr.music.primus import create_lmdb_from_primus

    stats = create_lmdb_from_primus(cfg.out, cfg.primus, encoding=cfg.encoding, distorted=cfg.distorted,
                                    check=cfg.check, overwrite=cfg.overwrite)
    if stats.written == 0:
        print(f"{PROG}: error: {stats.summary()}", file=sys.stderr)
        return 1
    print(stats.summary())
    return 0


if __name__ == "__main__":
    run_cli(main, prog=PROG)
