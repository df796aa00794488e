"""Reading with a classifier or tagger: ``load_classifier(path).classify(source)`` -> ``ClassifyResult``.

    clf = load_classifier("runs/digits/best.pt")      # or an export: "digits.onnx" (onnxruntime, no torch)
    r = clf.classify("clip.wav")                      # r.label, r.probability, r.labels, r.probabilities
    r.top(3)                                          # [("seven", 0.91), ("one", 0.05), ("nine", 0.02)]

A ``Classifier`` is a backend (the model: ``logits(batch, widths) -> (N, K)``), the model's
front-end (``crnn_ocr.frontend``: audio -> log-mel, as the model was trained) and its class list;
a tagger also has one threshold per class (from validation; 0.5 when the checkpoint has none).
Probabilities are a softmax over the classes (classify) or a sigmoid per class (tag). An input
narrower than the model's minimum (``ClipTooShort``) or a source that cannot be read is a
``ValueError`` naming it. Inputs are batched by width; the models mask the padding, so a clip's
probabilities do not depend on its batch.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from crnn_ocr.classify.classes import ClassList
from crnn_ocr.frontend import Frontend, stored_frontend
from crnn_ocr.tasks import task_of_kind

ONNX_FORMAT = "crnn_ocr-classify-onnx/1"
CLASSIFIER_TASKS = ("classify", "tag")
DEFAULT_THRESHOLD = 0.5


class ClipTooShort(ValueError):
    """An input narrower than the classifier's minimum (its windows or pools need more frames)."""


@dataclass(frozen=True)
class ClassifyResult:
    """One clip's reading.

    ``label``/``probability``: the most probable class; ``labels``: a tagger's classes at or over
    their thresholds, most probable first (a classifier's: ``(label,)``); ``probabilities``: every
    class's, in class-list order.
    """

    label: str
    probability: float
    labels: tuple[str, ...]
    probabilities: Mapping[str, float]

    def top(self, k: int) -> list[tuple[str, float]]:
        """The ``k`` most probable classes with their probabilities, most probable first."""
        return sorted(self.probabilities.items(), key=lambda item: -item[1])[:k]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * logits))  # no overflow for large |logits|


class Classifier:
    """Classifies sources with a backend, a front-end and a class list.

    Args:
        backend: runs the model: ``logits(batch (N, C, H, W) float32, widths (N,) int64) -> (N, K)``
            and ``uses_torch``.
        frontend: how a source becomes the model's input (the settings it was trained with).
        classes: the class list (``multilabel`` for a tagger).
        kind: "classify" or "tag".
        thresholds: a tagger's per-class thresholds (None: 0.5 each).
        min_width: the narrowest input the model takes (columns: log-mel frames).
    """

    def __init__(self, backend: Any, frontend: Frontend, classes: ClassList, *, kind: str = "classify",
                 thresholds: Sequence[float] | None = None, min_width: int = 1) -> None:
        if kind not in CLASSIFIER_TASKS:
            raise ValueError(f"kind must be classify or tag, got {kind!r}")
        self.backend, self.frontend, self.classes, self.kind = backend, frontend, classes, kind
        self.multilabel = kind == "tag"
        k = classes.num_classes
        self.thresholds = np.asarray(thresholds if thresholds is not None else [DEFAULT_THRESHOLD] * k, dtype=np.float64)
        if self.thresholds.shape != (k,):
            raise ValueError(f"{len(self.thresholds)} thresholds for {k} classes")
        self.min_width = int(min_width)

    def __repr__(self) -> str:
        return f"Classifier({self.kind}, {self.classes!r}, backend={self.backend.name}, {self.frontend!r})"

    def prepare(self, source: Any, sample_rate: int | None = None) -> np.ndarray:
        """One source -> the model's input (``Frontend.prepare``); ``ClipTooShort`` when it is
        narrower than ``min_width``."""
        x = self.frontend.prepare(source, sample_rate=sample_rate, use_torch=self.backend.uses_torch)
        if x.shape[1] < self.min_width:
            name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else f"<{type(source).__name__}>"
            to_seconds = getattr(self.frontend, "frames_to_seconds", None)
            span = (lambda w: f"{to_seconds(w):.2f} s ({w} frames)") if to_seconds else (lambda w: f"{w} columns")
            raise ClipTooShort(f"{name}: {span(int(x.shape[1]))} is shorter than the model's minimum of {span(self.min_width)}")
        return x

    def adapt(self, sources: Sequence[Any], sample_rate: int | None = None) -> int:
        """Re-estimate the model's BatchNorm statistics on unlabelled clips from the domain about to
        be classified (a new speaker or microphone: ``crnn_ocr.adapt``, AdaBN); later readings use
        them. Returns the number of layers adapted. PyTorch backend only (``ValueError`` otherwise);
        a clip shorter than the minimum is ``ClipTooShort``."""
        return self.adapt_prepared([self.prepare(s, sample_rate) for s in sources])

    def adapt_prepared(self, prepared: Sequence[np.ndarray]) -> int:
        """``adapt`` on prepared inputs (``prepare``'s output)."""
        from crnn_ocr.adapt import adapt_torch_backend  # imports torch: not for the ONNX deployment

        return adapt_torch_backend(self.backend, self.frontend, prepared, "adapt")

    def probabilities(self, prepared: Sequence[np.ndarray]) -> np.ndarray:
        """Prepared inputs -> probabilities (N, K), run as one right-padded batch."""
        batch = self.frontend.to_batch(prepared)  # (N, C, H, W)
        widths = np.array([int(x.shape[1]) for x in prepared], dtype=np.int64)
        logits = np.asarray(self.backend.logits(batch, widths), dtype=np.float64)  # (N, K)
        return sigmoid(logits) if self.multilabel else softmax(logits)

    def result(self, probabilities: np.ndarray) -> ClassifyResult:
        """Probabilities (K,) -> a ``ClassifyResult``."""
        best = int(np.argmax(probabilities))
        if self.multilabel:
            over = [k for k in np.argsort(-probabilities, kind="stable") if probabilities[k] >= self.thresholds[k]]
            labels = tuple(self.classes.classes[k] for k in over)
        else:
            labels = (self.classes.classes[best],)
        return ClassifyResult(label=self.classes.classes[best], probability=float(probabilities[best]), labels=labels,
                              probabilities=dict(zip(self.classes.classes, map(float, probabilities))))

    def classify(self, source: Any, sample_rate: int | None = None) -> ClassifyResult:
        """Classify one source (a path, encoded bytes, or an array; a waveform with its ``sample_rate``)."""
        return self.classify_prepared([self.prepare(source, sample_rate)])[0]

    def classify_batch(self, sources: Sequence[Any], batch_size: int = 32, sample_rate: int | None = None) -> list[ClassifyResult]:
        return self.classify_prepared([self.prepare(s, sample_rate) for s in sources], batch_size)

    def classify_prepared(self, prepared: Sequence[np.ndarray], batch_size: int = 32) -> list[ClassifyResult]:
        """Prepared inputs -> results in order, batching inputs of similar width."""
        order = sorted(range(len(prepared)), key=lambda i: prepared[i].shape[1])
        out: list[ClassifyResult | None] = [None] * len(prepared)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            for i, p in zip(idx, self.probabilities([prepared[i] for i in idx])):
                out[i] = self.result(p)
        return out  # type: ignore[return-value]

    def classify_files(self, paths: Sequence[str], *, batch_size: int = 32, workers: int = 4,
                       on_error: Callable[[str, ValueError], None] | None = None) -> Iterator[tuple[str, ClassifyResult]]:
        """Classify files in order, yielding ``(path, result)``; files are prepared by ``workers``
        threads. A file that cannot be used raises its ``ValueError`` (``ClipTooShort`` for a clip
        under the minimum), unless ``on_error(path, error)`` is given: then every other file is
        still read and yielded, in order."""
        window = 8 * batch_size
        pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 and len(paths) > 1 else None
        try:
            for start in range(0, len(paths), window):
                chunk = paths[start : start + window]
                jobs: list[Any] = [pool.submit(self.prepare, p) for p in chunk] if pool else list(chunk)
                kept, prepared = [], []
                for path, job in zip(chunk, jobs):
                    try:
                        prepared.append(job.result() if isinstance(job, Future) else self.prepare(job))
                        kept.append(path)
                    except ValueError as e:
                        if on_error is None:
                            raise
                        on_error(path, e)
                yield from zip(kept, self.classify_prepared(prepared, batch_size))
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)


# ------------------------------------------------------------------------------------ printing
def result_line(path: str, result: ClassifyResult, top_k: int | None = None, *, multilabel: bool = False) -> str:
    """``path<TAB>label<TAB>probability``; a tagger: its labels and their probabilities, comma-joined;
    ``top_k``: the k most probable classes, ``label<TAB>probability`` each."""
    if top_k:
        return "\t".join([path, *(f"{name}\t{p:.4f}" for name, p in result.top(top_k))])
    if multilabel:
        return f"{path}\t{','.join(result.labels)}\t{','.join(f'{result.probabilities[n]:.4f}' for n in result.labels)}"
    return f"{path}\t{result.label}\t{result.probability:.4f}"


def result_json(path: str, result: ClassifyResult, top_k: int | None = None, *, multilabel: bool = False) -> str:
    """One JSON object: ``label`` (the most probable class), its ``probability``, a tagger's
    ``labels`` over their thresholds, every class's ``probabilities``, and ``top`` with ``top_k``."""
    row: dict[str, Any] = {"path": path, "label": result.label, "probability": round(result.probability, 6)}
    if multilabel:
        row["labels"] = list(result.labels)
    row["probabilities"] = {name: round(p, 6) for name, p in result.probabilities.items()}
    if top_k:
        row["top"] = [[name, round(p, 6)] for name, p in result.top(top_k)]
    return json.dumps(row, ensure_ascii=False)


# ------------------------------------------------------------------------------------ loading
class TorchClassifierBackend:
    """Runs a classifier model in PyTorch (CPU unless ``device``)."""

    name = "torch"
    uses_torch = True

    def __init__(self, model: Any, device: str | None = None) -> None:
        import torch

        self.device = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = model.to(self.device).eval()

    def logits(self, batch: np.ndarray, widths: np.ndarray) -> np.ndarray:
        """float32 (N, C, H, W), true widths (N,) -> float32 logits (N, K)."""
        import torch

        with torch.inference_mode():
            out = self.model(torch.from_numpy(batch).to(self.device), torch.from_numpy(widths).to(self.device))
        return out.float().cpu().numpy()


class OnnxClassifierBackend:
    """Runs a classifier export in onnxruntime (``crnn_ocr.classify.export``); no torch."""

    name = "onnx"
    uses_torch = False

    def __init__(self, session: Any) -> None:
        self.session = session

    def logits(self, batch: np.ndarray, widths: np.ndarray) -> np.ndarray:
        return self.session.run(["logits"], {"images": batch.astype(np.float32), "widths": widths.astype(np.int64)})[0]


def _not_a_classifier(path: str, kind: str | None) -> ValueError:
    return ValueError(f"{path}: is a {kind or 'text'} model (a CTC recognizer, not a classifier): "
                      "read it with crnn_ocr.load_recognizer or tools/infer.py")


def load_torch_classifier(path: str, device: str | None = None) -> Classifier:
    """A classifier checkpoint (.pt) read by PyTorch."""
    from crnn_ocr.checkpoint import CheckpointError, load_checkpoint
    from crnn_ocr.classify.config import ClassifierConfig
    from crnn_ocr.classify.models import build_classifier, min_width

    state = load_checkpoint(path)
    kind = state.get("kind")
    if task_of_kind(kind) not in CLASSIFIER_TASKS:
        raise _not_a_classifier(path, kind)
    model = build_classifier(ClassifierConfig.from_dict(state["model_config"]))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not match the stored model config ({str(e).splitlines()[0]})") from None
    return Classifier(TorchClassifierBackend(model, device), stored_frontend(state, source=path), ClassList.from_dict(state["alphabet"]),
                      kind=kind, thresholds=state.get("thresholds"), min_width=min_width(model))


def load_onnx_classifier(path: str, threads: int | None = None) -> Classifier:
    """A classifier export (.onnx) read by onnxruntime; torch is never imported."""
    from crnn_ocr.extras import require

    ort = require("onnxruntime", "an .onnx classifier")
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise ValueError(f"{path}: not a loadable ONNX model ({str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__})") from None
    props = session.get_modelmeta().custom_metadata_map
    meta = json.loads(props.get("crnn_ocr", "{}"))
    if task_of_kind(meta.get("kind")) not in CLASSIFIER_TASKS:
        raise _not_a_classifier(path, meta.get("kind"))
    if meta.get("format") != ONNX_FORMAT:
        raise ValueError(f"{path}: unsupported classifier export format {meta.get('format')!r} (expected {ONNX_FORMAT!r})")
    return Classifier(OnnxClassifierBackend(session), stored_frontend(meta, source=path), ClassList.from_dict(meta["classes"]),
                      kind=meta["kind"], thresholds=meta.get("thresholds"), min_width=int(meta["min_width"]))


def load_classifier(source: str | os.PathLike, *, backend: str = "auto", device: str | None = None,
                    threads: int | None = None) -> Classifier:
    """A classifier or tagger from a checkpoint (.pt, PyTorch), an export (.onnx, onnxruntime;
    ``backend`` "auto" decides by the suffix) or a shipped model's name (``crnn_ocr.pretrained``;
    its export when one ships and onnxruntime is installed). ``ValueError`` (one line) for a
    missing file or a model that is not a classifier."""
    from crnn_ocr.pretrained import pretrained_path
    from crnn_ocr.pretrained import shipped as shipped_model

    path = os.fspath(source)
    if (shipped := shipped_model(path)) is not None:  # a shipped model's name
        onnx = shipped.onnx_path
        use_onnx = backend == "onnx" or (backend == "auto" and device is None and onnx is not None and onnx.is_file()
                                          and importlib.util.find_spec("onnxruntime") is not None)
        path = os.fspath(onnx if use_onnx and onnx is not None else pretrained_path(path))
    if not os.path.isfile(path):
        raise ValueError(f"{path}: {'is a directory, expected a model file' if os.path.isdir(path) else 'model not found'}")
    if backend not in ("auto", "torch", "onnx"):
        raise ValueError(f"backend must be auto, torch or onnx, got {backend!r}")
    if backend == "onnx" or (backend == "auto" and path.lower().endswith(".onnx")):
        return load_onnx_classifier(path, threads)
    return load_torch_classifier(path, device)
