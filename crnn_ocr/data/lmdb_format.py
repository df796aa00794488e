"""The LMDB layout every CRNN tool shares: writing it, opening it, reading it back unfiltered.

    b"num-samples"      -> b"50000"
    b"image-000000001"  -> the encoded file's bytes (PNG/JPEG; speech: WAV/FLAC/OGG, stored as-is)
    b"label-000000001"  -> UTF-8 label (speech: the transcript)

numbered from 1 (CRNN, deep-text-recognition-benchmark, parseq, ...). ``write_lmdb`` writes it,
``shared_env`` opens one read-only per process, ``iter_lmdb_samples`` yields every entry for
evaluation; ``crnn_ocr.data.dataset.LmdbDataset`` reads one for training.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import lmdb

NUM_SAMPLES_KEY = b"num-samples"


def image_key(index: int) -> bytes:
    """Key of the 1-based sample ``index``'s image."""
    return b"image-%09d" % index


def label_key(index: int) -> bytes:
    """Key of the 1-based sample ``index``'s label."""
    return b"label-%09d" % index


# ------------------------------------------------------------------------------------ writing
def write_lmdb(
    path: str | os.PathLike,
    samples: Iterable[tuple[bytes, str]],
    *,
    map_size: int = 1 << 30,
    commit_every: int = 1000,
    overwrite: bool = False,
) -> int:
    """Write ``(encoded image bytes, label)`` pairs as the standard layout; returns the count.

    Commits every ``commit_every`` samples and doubles ``map_size`` whenever the map is full, so
    the initial size is only a hint. An existing LMDB at ``path`` is an error unless ``overwrite``.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    data_file = path / "data.mdb"
    if data_file.exists():
        if not overwrite:
            raise FileExistsError(f"{path}: an LMDB already exists there (use overwrite)")
        data_file.unlink()
        (path / "lock.mdb").unlink(missing_ok=True)
    # lock=False: a single writer, and no lock.mdb left beside the finished dataset
    env = lmdb.open(os.fspath(path), map_size=map_size, lock=False, meminit=False, subdir=True)

    def commit(entries: list[tuple[bytes, bytes]]) -> None:
        while True:
            try:
                with env.begin(write=True) as txn:
                    for key, value in entries:
                        txn.put(key, value)
                return
            except lmdb.MapFullError:
                env.set_mapsize(env.info()["map_size"] * 2)

    count = 0
    chunk: list[tuple[bytes, bytes]] = []
    try:
        for image, label in samples:
            if not isinstance(label, str):
                raise TypeError(f"sample {count + 1}: label must be str, got {type(label).__name__}")
            count += 1
            chunk.append((image_key(count), bytes(image)))
            chunk.append((label_key(count), label.encode("utf-8")))
            if len(chunk) >= 2 * commit_every:
                commit(chunk)
                chunk = []
        chunk.append((NUM_SAMPLES_KEY, str(count).encode()))
        commit(chunk)
        env.sync()
    finally:
        env.close()
    return count


# ------------------------------------------------------------------------------------ reading
_ENVS: dict[tuple[int, int], tuple[int, lmdb.Environment]] = {}


def shared_env(path: str) -> lmdb.Environment:
    """This process's read-only environment for the LMDB at ``path``, opened on first use.

    LMDB forbids opening one environment twice in a process, so datasets on the same files
    (train and val on one LMDB) share it. An environment inherited through ``fork`` (DataLoader
    workers) is released in the child and reopened. Read-only and lock-free: no lock file is
    written, so read-only media and many workers are fine.
    """
    subdir = os.path.isdir(path)
    st = os.stat(os.path.join(path, "data.mdb") if subdir else path)
    key, pid = (st.st_dev, st.st_ino), os.getpid()
    cached = _ENVS.get(key)
    if cached is not None:
        owner, env = cached
        if owner == pid:
            return env
        env.close()  # the parent's; closing our copy of the mapping leaves the parent's intact
    env = lmdb.open(path, readonly=True, lock=False, readahead=False, meminit=False, subdir=subdir)
    _ENVS[key] = (pid, env)
    return env


def iter_lmdb_samples(path: str | os.PathLike) -> Iterator[tuple[int, bytes, str]]:
    """Every sample of a standard-layout LMDB, unfiltered, for evaluation: (1-based index, image bytes, label).

    Missing entries are skipped; a non-UTF-8 label is decoded with replacement characters.
    Raises ``ValueError`` if ``path`` is not a dataset LMDB.
    """
    path = os.fspath(path)
    try:
        env = shared_env(path)
    except (lmdb.Error, OSError) as e:
        raise ValueError(f"{path}: cannot open as LMDB: {e}") from None
    with env.begin() as txn:
        raw = txn.get(NUM_SAMPLES_KEY)
    if raw is None or not raw.strip().isdigit():
        raise ValueError(f"{path}: not a dataset LMDB (no valid 'num-samples' key)")
    for index in range(1, int(raw) + 1):
        with env.begin() as txn:
            image, label = txn.get(image_key(index)), txn.get(label_key(index))
        if image is not None and label is not None:
            yield index, image, label.decode("utf-8", errors="replace")
