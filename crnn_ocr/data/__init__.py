"""Training data: LMDBs in the field's standard layout, read through a front-end, batched by width.

- ``crnn_ocr.data.lmdb_format``: the layout (``num-samples``, ``image-%09d``, ``label-%09d``),
  ``write_lmdb``, ``iter_lmdb_samples``;
- ``crnn_ocr.data.dataset``: ``LmdbDataset(path, alphabet, frontend)``, filtered and counted at
  start, items from ``Frontend.training_input``;
- ``crnn_ocr.data.sampling``: ``BucketBatchSampler`` (width buckets; datasets mixed by ratio
  through ``group_sizes`` + ``ratios`` over a ``ConcatDataset``) and ``collate_batch``;
- ``crnn_ocr.data.building``: ``create_lmdb*`` from a label file or a folder of images or audio.
- ``crnn_ocr.data.sources``: what a ``--data`` entry opens (an LMDB, or a wing's source named by a
  prefix, ``synth:CONFIG.json``).

The names below are importable from ``crnn_ocr.data`` directly.
"""

from crnn_ocr.data.building import (
    CreateStats,
    create_lmdb,
    create_lmdb_from_folder,
    create_lmdb_from_label_file,
    read_label_file,
    scan_image_folder,
)
from crnn_ocr.data.dataset import LmdbDataset
from crnn_ocr.data.lmdb_format import NUM_SAMPLES_KEY, image_key, iter_lmdb_samples, label_key, shared_env, write_lmdb
from crnn_ocr.data.sampling import BucketBatchSampler, collate_batch

__all__ = [
    "NUM_SAMPLES_KEY", "BucketBatchSampler", "CreateStats", "LmdbDataset", "collate_batch", "create_lmdb",
    "create_lmdb_from_folder", "create_lmdb_from_label_file", "image_key", "iter_lmdb_samples", "label_key",
    "read_label_file", "scan_image_folder", "shared_env", "write_lmdb",
]
