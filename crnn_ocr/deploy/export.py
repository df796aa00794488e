"""Export a checkpoint (text, score or speech: the same CRNN) for deployment (the deploy wing);
a classifier or tagger goes to ``crnn_ocr.classify.export`` (fp32 ONNX).

    export_onnx("best.pt", "best.onnx")                 # fp32, dynamic batch and width
    export_onnx("best.pt", "best.int8.onnx", int8=True) # + int8 LSTM/linear weights (dynamic)
    export_onnx("best.pt", "best.int8.onnx", int8=True, calibration=word_images)  # + static int8 convs
    export_torchscript("best.pt", "best.ts")
    quantize_foreign("PP-OCRv6_rec_small.onnx", "PP-OCRv6_rec_small.int8.onnx")  # a PP-OCR recognizer

The ONNX graph maps ``images`` float32 (N, C, H, W) in [-1, 1] (batch and width dynamic) and
``widths`` int64 (N,), each image's true width in the right-padded batch, to ``logits`` float32
(N, T, num_classes): the padding is masked in the convolutions and the BiLSTMs run with
``sequence_lens``, so an image reads the same in any batch (``CRNN.forward``). Its metadata key
``crnn_ocr`` holds JSON with the alphabet, kind, front-end (``crnn_ocr.frontend``), model config
and the frame rule T(W), so the ``.onnx`` file alone is enough to read with
(``load_recognizer("model.onnx")``: ``crnn_ocr.onnx_backend``); a TorchScript file carries the
same JSON as the extra file ``crnn_ocr.json``.

Export uses PyTorch's TorchScript-based ONNX exporter (``dynamo=False``): it handles the
BiLSTM and dynamic width without extra packages; opset 17.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crnn_ocr.frontend import Frontend, ImageFrontend, stored_frontend
from crnn_ocr.model import CRNN, ModelConfig, min_input_width, output_length
from crnn_ocr.onnx_backend import INPUT_NAME, METADATA_KEY, ONNX_FORMAT, OUTPUT_NAME, WIDTHS_NAME, FrameRule
from crnn_ocr.tasks import WrongTask
from crnn_ocr.torch_backend import load_model
from crnn_ocr.views import Recheck

DEFAULT_OPSET = 17
TORCHSCRIPT_METADATA = "crnn_ocr.json"
# Dynamic int8 quantization of these ops only: onnxruntime's dynamic ConvInteger is ~4x slower than
# its fp32 convolutions on CPU; convolutions are quantized statically, given calibration images.
INT8_OP_TYPES = ("LSTM", "MatMul", "Gemm")


@dataclass(frozen=True)
class ExportConfig:
    """What ``tools/export.py`` does."""

    checkpoint: str
    out: str | None = None  # default: the checkpoint's path with .onnx / .int8.onnx / .ts
    format: str = "onnx"  # "onnx", "torchscript" or "pt" (an inference-only checkpoint)
    int8: bool = False
    calibration: tuple[str, ...] = ()  # image files: int8 also quantizes the convolutions (static)
    opset: int = DEFAULT_OPSET
    check: bool = True  # compare the export with PyTorch on two widths
    recheck: Recheck | bool | None = None  # the reading's second look: a Recheck sets it, False removes it, None keeps the checkpoint's


def frame_rule(config: ModelConfig) -> FrameRule:
    """T(W) of a model as ``(W + offset) // stride``, checked on every width up to 4096."""
    min_w = min_input_width(config)
    widths = np.arange(min_w, 4097)
    frames = np.array([int(output_length(int(w), config)) for w in widths])
    for stride in range(1, 17):
        for offset in range(-2 * stride, 2 * stride + 1):
            if np.array_equal((widths + offset) // stride, frames):
                return FrameRule(stride=stride, offset=offset, min_width=min_w)
    raise ValueError(f"arch {config.arch!r}: its T(W) is not of the form (W + offset) // stride")


def with_recheck(frontend: Frontend, recheck: Recheck | bool | None, source: str | os.PathLike = "<model>") -> Frontend:
    """``frontend`` with its reading's second look (``crnn_ocr.views.Recheck``) set (a ``Recheck``),
    removed (False) or kept (None); ValueError naming ``source`` for a model that does not read images."""
    if recheck is None or recheck is True:
        return frontend
    if not isinstance(frontend, ImageFrontend):
        raise ValueError(f"{os.fspath(source)}: a recheck applies to image models; this one's front-end is {frontend.kind!r}")
    if recheck is not False and not isinstance(recheck, Recheck):
        raise ValueError(f"recheck must be a crnn_ocr.views.Recheck, False or None, got {recheck!r}")
    return dataclasses.replace(frontend, recheck=recheck or None)


def export_metadata(path: str | os.PathLike, *, precision: str = "fp32",
                    recheck: Recheck | bool | None = None) -> tuple[CRNN, Frontend, dict[str, Any]]:
    """The checkpoint's model (CPU, eval, fp32), its front-end (``recheck`` as ``with_recheck``)
    and the metadata dict stored with an export."""
    model, alphabet, frontend, kind = load_model(path)
    frontend = with_recheck(frontend, recheck, path)
    meta = {
        "format": ONNX_FORMAT,
        "kind": kind,
        "alphabet": alphabet.to_dict(),
        "frontend": frontend.to_dict(),
        "model_config": model.config.to_dict(),
        "frames": frame_rule(model.config).to_dict(),
        "precision": precision,
        "input": INPUT_NAME,
        "widths": WIDTHS_NAME,
        "output": OUTPUT_NAME,
    }
    return model.float().cpu(), frontend, meta


def _example_input(model: CRNN, width: int = 128, batch: int = 2) -> torch.Tensor:
    c = model.config
    return torch.zeros(batch, c.in_channels, c.height, width).uniform_(-1, 1)  # (N, C, H, W)


def _example_widths(width: int, batch: int = 2) -> torch.Tensor:
    """True widths (N,) of an example batch: the first image full width, the others narrower."""
    return torch.tensor([width] + [max(16, width * (batch - i) // (batch + 1)) for i in range(1, batch)], dtype=torch.long)


def export_onnx(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    *,
    int8: bool = False,
    calibration: Sequence[str | os.PathLike | np.ndarray] | None = None,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    recheck: Recheck | bool | None = None,
) -> Path:
    """Write ``checkpoint`` as an ONNX model with dynamic batch and width (see the module doc).

    ``int8``: quantize for CPU (``quantize_int8``): dynamic int8 LSTM/linear weights, plus static
    int8 convolutions when ``calibration`` images are given. ``check``: run the export in
    onnxruntime on two widths and compare with PyTorch: ValueError if the logits differ by more
    than 1e-4 (fp32) or 0.5 (dynamic int8); static int8 is checked for shapes only, its accuracy
    depends on the calibration (measure it: bench/bench_deploy.py). ``recheck``: ``with_recheck``'s.
    """
    import onnx

    if calibration is not None and not int8:
        raise ValueError("calibration images are only used for an int8 export")
    model, frontend, meta = export_metadata(checkpoint, precision="int8" if int8 else "fp32", recheck=recheck)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        fp32_path = Path(tmp) / "model.onnx"
        with warnings.catch_warnings(), _quiet_native_warnings("prim::PackPadded", "prim::PadPacked"):
            warnings.simplefilter("ignore")  # tracer chatter: shape checks become constants, LSTM batch note
            torch.onnx.export(
                model, (_example_input(model), _example_widths(128)), str(fp32_path), dynamo=False, opset_version=opset,
                input_names=[INPUT_NAME, WIDTHS_NAME], output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch", 3: "width"}, WIDTHS_NAME: {0: "batch"},
                              OUTPUT_NAME: {0: "batch", 1: "frames"}},
            )
        src = fp32_path
        if int8:
            src = Path(tmp) / "model.int8.onnx"
            batches = None if calibration is None else calibration_batches(calibration, frontend)
            meta["quantization"] = quantize_int8(fp32_path, src, batches)
        proto = onnx.load(str(src))
        del proto.metadata_props[:]
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(meta, separators=(",", ":"))
        proto.doc_string = f"crnn_ocr {meta['kind']} recognizer ({meta['model_config']['arch']}, {meta['precision']})"
        staged = Path(tmp) / "final.onnx"
        onnx.save(proto, str(staged))
        if check:
            tolerance = (math.inf if calibration is not None else 0.5) if int8 else 1e-4
            check_onnx(model, staged, tolerance=tolerance)
        os.replace(staged, out)
    return out


@contextlib.contextmanager
def _quiet_native_warnings(*patterns: str) -> Iterator[None]:
    """Drop the lines of C++ warnings (written to file descriptor 2, out of Python's reach) that
    contain one of ``patterns``; every other line still reaches stderr. The exporter warns that it
    cannot infer shapes through packed sequences, which the fused ONNX LSTM does not need."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                    if not any(p in line for p in patterns)]
            sys.stderr.write("".join(kept))


def calibration_batches(sources: Sequence[str | os.PathLike | np.ndarray], frontend: Frontend) -> list[np.ndarray]:
    """Sources (paths, bytes or arrays) -> model inputs (1, C, H, w) float32, one per source, as at
    inference: prepared by the model's front-end (full resolution), then no wider than one
    reading window (``max_width``), which is what the model sees of a longer line."""
    if not sources:
        raise ValueError("calibration needs at least one image")
    window = frontend.max_width
    batches = []
    for source in sources:
        x = frontend.prepare(source)
        batches.append(frontend.to_batch([x if window is None else x[:, :window]]))
    return batches


def quantize_int8(src: str | os.PathLike, dst: str | os.PathLike, calibration: list[np.ndarray] | None = None) -> dict[str, Any]:
    """Quantize an fp32 export for CPU; returns what was done (stored in the metadata).

    Always: dynamic int8 weights for LSTM/MatMul/Gemm (activations quantized on the fly).
    With ``calibration`` inputs (N, C, H, W): also static int8 convolutions (QDQ, per-channel
    weights, uint8 activations with MinMax ranges from the calibration set), which onnxruntime
    runs as integer convolutions: most of the speed-up, since the convolutions take ~75% of the
    time. Without calibration the convolutions stay fp32 (dynamic ConvInteger is slower than fp32).
    """
    import logging

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizers log generic advice as warnings
    try:
        if calibration is None:
            quantize_dynamic(src, dst, weight_type=QuantType.QInt8, op_types_to_quantize=list(INT8_OP_TYPES))
            return {"method": "dynamic", "ops": list(INT8_OP_TYPES)}
        from onnxruntime.quantization.shape_inference import quant_pre_process

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self.items = iter(calibration)

            def get_next(self) -> dict[str, np.ndarray] | None:
                batch = next(self.items, None)
                return None if batch is None else {INPUT_NAME: batch, WIDTHS_NAME: np.full(len(batch), batch.shape[3], np.int64)}

        work = Path(dst).with_name("static_pre.onnx")
        quant_pre_process(str(src), str(work))
        static = Path(dst).with_name("static_conv.onnx")
        quantize_static(work, static, Reader(), quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv"],
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        quantize_dynamic(static, dst, weight_type=QuantType.QInt8, op_types_to_quantize=list(INT8_OP_TYPES))
        return {"method": "static+dynamic", "ops": ["Conv", *INT8_OP_TYPES], "calibration_images": len(calibration)}
    finally:
        root.setLevel(level)


def quantize_foreign(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Dynamic int8 weights for the MatMul/Gemm of a foreign recognizer's ONNX file (a PP-OCR
    one: ``crnn_ocr.ppocr``), its metadata (the character list) kept. Its convolutions stay
    fp32; BENCHMARKS.md measures what it costs in accuracy. The result is checked to load."""
    from crnn_ocr.onnx_backend import load_onnx

    load_onnx(src, threads=1)  # a readable CTC recognizer (one line naming what is missing, if not)
    with _quiet_native_warnings("Please consider to run pre-processing"):
        quantize_int8(src, dst)
    load_onnx(dst, threads=1)
    return Path(dst)


def check_onnx(model: CRNN, path: str | os.PathLike, *, tolerance: float = 1e-4, widths: tuple[int, ...] = (37, 160)) -> float:
    """Max |logit difference| between ``model`` and the ONNX file on random inputs of ``widths``
    (batch 2: one full width, one narrower, compared on its own frames); ValueError if above
    ``tolerance`` or if the frame counts differ."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1  # small inputs: threads would only add start-up and contention
    session = ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])
    worst = 0.0
    for w in widths:
        x, true_widths = _example_input(model, width=w), _example_widths(w)
        with torch.inference_mode():
            ref = model(x, true_widths).numpy()  # (N, T, K)
        got = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy(), WIDTHS_NAME: true_widths.numpy()})[0]
        if got.shape != ref.shape:
            raise ValueError(f"{path}: exported model gives logits {got.shape} at width {w}, PyTorch {ref.shape}")
        for i, frames in enumerate(output_length(true_widths, model.config).tolist()):
            worst = max(worst, float(np.abs(got[i, :frames] - ref[i, :frames]).max()))
    if worst > tolerance:
        raise ValueError(f"{path}: exported logits differ from PyTorch by {worst:.3g} (> {tolerance})")
    return worst


def export_torchscript(checkpoint: str | os.PathLike, out: str | os.PathLike, *, check: bool = True,
                       recheck: Recheck | bool | None = None) -> Path:
    """Write ``checkpoint`` as a traced TorchScript module (any batch and width; called as
    ``module(images, widths)`` like the ONNX graph) with the metadata JSON as the extra file
    ``crnn_ocr.json``; load with ``torch.jit.load(path, _extra_files=...)``."""
    model, _, meta = export_metadata(checkpoint, recheck=recheck)
    meta = {**meta, "format": "crnn_ocr-torchscript/2"}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # torch.jit.trace is deprecated but still the lightest TorchScript path
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, (_example_input(model), _example_widths(128)))
    if check:
        for w in (37, 160):
            x, true_widths = _example_input(model, width=w), _example_widths(w)
            with torch.inference_mode():
                diff = float((traced(x, true_widths) - model(x, true_widths)).abs().max())
            if diff > 1e-5:
                raise ValueError(f"{out}: traced logits differ from the model by {diff:.3g}")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.jit.save(traced, str(tmp), _extra_files={TORCHSCRIPT_METADATA: json.dumps(meta)})
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def export_inference_checkpoint(checkpoint: str | os.PathLike, out: str | os.PathLike, *,
                                recheck: Recheck | bool | None = None) -> Path:
    """Write ``checkpoint`` without its training state (optimizer, scheduler, RNG): the file to
    ship or share; it loads everywhere a checkpoint does, and ``--init-from`` accepts it.
    ``recheck``: ``with_recheck``'s (its front-end then stored in the current form)."""
    from crnn_ocr.checkpoint import inference_state, load_checkpoint, save_checkpoint

    state = load_checkpoint(checkpoint)
    if recheck is not None and recheck is not True:
        state["frontend"] = with_recheck(stored_frontend(state, source=checkpoint), recheck, checkpoint).to_dict()
    out = Path(out)
    if out.resolve() == Path(checkpoint).resolve():
        raise ValueError(f"{out}: would overwrite the source checkpoint; choose another --out")
    save_checkpoint(out, inference_state(state))
    return out


def default_output(checkpoint: str | os.PathLike, format: str = "onnx", int8: bool = False) -> Path:
    """best.pt -> best.onnx, best.int8.onnx, best.ts or best.infer.pt."""
    suffix = {"torchscript": ".ts", "pt": ".infer.pt"}.get(format, ".int8.onnx" if int8 else ".onnx")
    return Path(checkpoint).with_suffix(suffix)


def export(config: ExportConfig) -> Path:
    """Run one export described by ``config`` (``tools/export.py``)."""
    out = config.out or default_output(config.checkpoint, config.format, config.int8)
    if os.fspath(config.checkpoint).lower().endswith(".onnx"):
        if config.format != "onnx" or not config.int8 or config.calibration or config.recheck is not None:
            raise ValueError(f"{config.checkpoint}: an ONNX model can only be quantized here: --int8, without --calibration or --format")
        return quantize_foreign(config.checkpoint, out)
    if config.format in ("torchscript", "pt") and config.int8:
        raise ValueError("--int8 applies to ONNX exports")
    if config.format == "pt":
        return export_inference_checkpoint(config.checkpoint, out, recheck=config.recheck)
    if config.format not in ("onnx", "torchscript"):
        raise ValueError(f"format must be onnx, torchscript or pt, got {config.format!r}")
    try:
        if config.format == "torchscript":
            return export_torchscript(config.checkpoint, out, check=config.check, recheck=config.recheck)
        calibration = list(config.calibration) or None
        return export_onnx(config.checkpoint, out, int8=config.int8, calibration=calibration, opset=config.opset,
                           check=config.check, recheck=config.recheck)
    except WrongTask as e:  # a classifier or tagger: the classify wing exports it
        if config.recheck is not None:
            raise ValueError(f"{config.checkpoint}: a recheck applies to image models, not a {e.kind} model") from None
        if config.format != "onnx" or config.int8:
            raise ValueError(f"{config.checkpoint}: a {e.kind} model exports to fp32 ONNX (or --format pt) only") from None
        from crnn_ocr.classify.export import export_classifier_onnx

        with _quiet_native_warnings("prim::PackPadded", "prim::PadPacked"):
            return export_classifier_onnx(config.checkpoint, out, opset=config.opset, check=config.check)
