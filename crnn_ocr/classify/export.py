"""ONNX export of a classifier or tagger checkpoint (``tools/export.py`` routes them here).

The graph maps ``images`` float32 (N, C, H, W) (batch and width dynamic) and ``widths`` int64
(N,), each input's true width in the right-padded batch, to ``logits`` float32 (N, num_classes).
The metadata key ``crnn_ocr`` holds JSON with the format (``crnn_ocr-classify-onnx/1``), kind,
class list, thresholds, front-end, model config and the narrowest input, so the file alone is
enough to read with (``load_classifier("model.onnx")``, no torch).
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from crnn_ocr.checkpoint import load_checkpoint
from crnn_ocr.classify.classes import ClassList
from crnn_ocr.classify.config import ClassifierConfig
from crnn_ocr.classify.models import build_classifier, min_width
from crnn_ocr.classify.reading import CLASSIFIER_TASKS, ONNX_FORMAT
from crnn_ocr.frontend import stored_frontend
from crnn_ocr.tasks import task_of_kind

DEFAULT_OPSET = 17


def _example(model: torch.nn.Module, config: ClassifierConfig, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of two: one ``width`` wide, one narrower (but at least the model's minimum)."""
    x = torch.zeros(2, config.in_channels, config.height, width).uniform_(-2, 2)  # (N, C, H, W)
    return x, torch.tensor([width, max(min_width(model), width * 2 // 3)], dtype=torch.long)


def export_classifier_onnx(checkpoint: str | os.PathLike, out: str | os.PathLike, *, opset: int = DEFAULT_OPSET,
                           check: bool = True) -> Path:
    """Write a classifier checkpoint as ONNX; ``check``: compare with PyTorch at two widths
    (``ValueError`` if the logits differ by more than 1e-4)."""
    import onnx

    state = load_checkpoint(checkpoint)
    kind = state.get("kind")
    if task_of_kind(kind) not in CLASSIFIER_TASKS:
        raise ValueError(f"{checkpoint}: is a {kind or 'text'} model, not a classifier")
    config = ClassifierConfig.from_dict(state["model_config"])
    model = build_classifier(config)
    model.load_state_dict(state["model"])
    model.eval()
    meta = {"format": ONNX_FORMAT, "kind": kind, "classes": ClassList.from_dict(state["alphabet"]).to_dict(),
            "thresholds": state.get("thresholds"), "frontend": stored_frontend(state, source=checkpoint).to_dict(),
            "model_config": config.to_dict(), "min_width": min_width(model), "input": "images", "widths": "widths", "output": "logits"}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    width = max(64, 2 * min_width(model))
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        staged = Path(tmp) / "model.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes on shape arithmetic and the RNN batch
            torch.onnx.export(model, _example(model, config, width), str(staged), dynamo=False, opset_version=opset,
                              input_names=["images", "widths"], output_names=["logits"],
                              dynamic_axes={"images": {0: "batch", 3: "width"}, "widths": {0: "batch"}, "logits": {0: "batch"}})
        proto = onnx.load(str(staged))
        entry = proto.metadata_props.add()
        entry.key, entry.value = "crnn_ocr", json.dumps(meta, separators=(",", ":"))
        proto.doc_string = f"crnn_ocr {kind} model ({config.arch}, {config.num_classes} classes)"
        onnx.save(proto, str(staged))
        if check:
            check_classifier_onnx(model, config, staged, widths=(width + 37, max(min_width(model) + 5, width // 2 + 3)))
        os.replace(staged, out)
    return out


def check_classifier_onnx(model: torch.nn.Module, config: ClassifierConfig, path: str | os.PathLike, *, widths: tuple[int, ...],
                          tolerance: float = 1e-4) -> float:
    """Max |logit difference| between ``model`` and the export on batches of ``widths``;
    ``ValueError`` above ``tolerance``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])
    worst = 0.0
    for w in widths:
        x, true_widths = _example(model, config, w)
        with torch.inference_mode():
            ref = model(x, true_widths).numpy()
        got = session.run(["logits"], {"images": x.numpy(), "widths": true_widths.numpy()})[0]
        if got.shape != ref.shape:
            raise ValueError(f"{path}: exported model gives logits {got.shape} at width {w}, PyTorch {ref.shape}")
        worst = max(worst, float(np.abs(got - ref).max()))
    if worst > tolerance:
        raise ValueError(f"{path}: exported logits differ from PyTorch by {worst:.3g} (> {tolerance})")
    return worst
