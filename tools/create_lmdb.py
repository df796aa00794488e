"""Build a standard-layout LMDB (num-samples, image-%09d, label-%09d) from images on disk.

    python tools/create_lmdb.py --out lmdb/train --labels gt.txt [--root images/]
    python tools/create_lmdb.py --out lmdb/train --folder images/

``--labels``: ``path<TAB>label`` lines (deep-text-recognition-benchmark's gt.txt); paths are
relative to ``--root`` (default: the label file's folder). ``--folder``: every image below the
folder, labelled by a sibling ``.txt`` file or else by its name (``word_12.png`` -> ``word``).
Undecodable or missing images are skipped and counted. Bad input exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass


@dataclass
class CreateLmdbConfig:
    out: str
    labels: str | None = None
    root: str | None = None
    folder: str | None = None
    check: bool = True
    overwrite: bool = False


def parse_args(argv: list[str] | None = None) -> CreateLmdbConfig:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output LMDB folder")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--labels", help="path<TAB>label file (gt.txt)")
    src.add_argument("--folder", help="folder of images labelled by sibling .txt files or file names")
    p.add_argument("--root", help="folder the --labels paths are relative to (default: the label file's folder)")
    p.add_argument("--no-check", dest="check", action="store_false", help="do not decode images to validate them")
    p.add_argument("--overwrite", action="store_true", help="replace an existing LMDB at --out")
    a = p.parse_args(argv)
    if a.root and not a.labels:
        p.error("--root goes with --labels")
    return CreateLmdbConfig(a.out, a.labels, a.root, a.folder, a.check, a.overwrite)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    from crnn_ocr.data import create_lmdb_from_folder, create_lmdb_from_label_file

    try:
        if cfg.labels:
            stats = create_lmdb_from_label_file(cfg.out, cfg.labels, root=cfg.root, check=cfg.check, overwrite=cfg.overwrite)
        else:
            stats = create_lmdb_from_folder(cfg.out, cfg.folder, check=cfg.check, overwrite=cfg.overwrite)
    except (ValueError, OSError) as e:
        print(f"create_lmdb: error: {e}", file=sys.stderr)
        return 2
    if stats.written == 0:
        print(f"create_lmdb: error: {stats.summary()}", file=sys.stderr)
        return 1
    print(stats.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
