"""A teacher's check on generated word images: keep a sample only where a strong reader reads its label.

    read = teacher_reader("runs/PP-OCRv6_rec_small.onnx", threads=2)      # any model load_recognizer opens
    for png, label, tag, right in teacher_checked(candidates, read):      # (PNG, label, tag) in, in order
        ...

Used by the perturbed copies of real crops (``crnn_ocr.synth.perturbed``) and the stitched crops
(``crnn_ocr.synth.stitched``) at data-making time only; nothing that reads text depends on a
teacher. "Reads its label" is the field's protocol: case-insensitive alphanumeric equality.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from crnn_ocr.metrics import normalize_alnum

Reader = Callable[[list[bytes]], list[str]]  # encoded images -> their texts, one batch at a time


def teacher_reader(path: str, threads: int = 1) -> Reader:
    """The batch reader of the model at ``path`` (an ONNX recognizer or a checkpoint ``load_recognizer`` opens)."""
    from crnn_ocr.recognizer import load_recognizer

    rec = load_recognizer(path, threads=threads)
    return lambda images: [r.text for r in rec.read_batch(images)]


def teacher_checked(candidates: Iterable[tuple[bytes, str, bool]], read: Reader | None,
                    batch: int = 256) -> Iterator[tuple[bytes, str, bool, bool]]:
    """``(PNG, label, tag)`` candidates -> ``(PNG, label, tag, right)`` in order: ``right`` when the
    teacher's reading equals the label under the field's protocol (case-insensitive alphanumeric).

    ``read`` maps a list of encoded images to a list of texts (e.g. ``teacher_reader``), called
    on ``batch`` candidates at a time; ``None`` reads every image as its label (no teacher).
    """
    pending: list[tuple[bytes, str, bool]] = []

    def flush() -> Iterator[tuple[bytes, str, bool, bool]]:
        texts = read([png for png, _, _ in pending]) if read is not None else [label for _, label, _ in pending]
        for (png, label, tag), text in zip(pending, texts, strict=True):
            yield png, label, tag, normalize_alnum(text) == normalize_alnum(label)
        pending.clear()

    for candidate in candidates:
        pending.append(candidate)
        if len(pending) >= batch:
            yield from flush()
    if pending:
        yield from flush()
