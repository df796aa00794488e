"""The PyTorch backend: a crnn_ocr checkpoint's CRNN behind the ``Backend`` interface.

    net, alphabet, frontend, kind = load_model("best.pt")     # the checkpoint's parts
    backend = TorchBackend(net, device="cpu")                 # log_probs(batch, widths) -> (N, T, K)

``crnn_ocr.recognizer.load_recognizer`` builds one for a ``.pt`` file; ``crnn_ocr.deploy.export``
uses ``load_model`` to export the same network. This module imports torch.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from crnn_ocr.alphabet import Alphabet
from crnn_ocr.checkpoint import CheckpointError, load_checkpoint
from crnn_ocr.frontend import Frontend, stored_frontend
from crnn_ocr.model import CRNN, ModelConfig, build_model, output_length
from crnn_ocr.tasks import check_ctc_model

PRECISIONS = ("fp32", "bf16")
SLOW_BF16 = "bfloat16 on this CPU is emulated (no AVX512-BF16 or AMX), slower than float32"


def _cpu_bf16_supported() -> bool:
    """oneDNN's answer (AVX512-BF16 or AMX); True when torch cannot tell."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return True


def native_bf16(device: str | torch.device) -> bool:
    """Whether bfloat16 matrix products run in hardware on ``device``: CUDA's own answer; on the
    CPU, AVX512-BF16 or AMX. Without them autocast emulates bfloat16, slower than float32, so the
    trainer's ``--bf16`` and ``infer.py --precision bf16`` say so (``SLOW_BF16``)."""
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return _cpu_bf16_supported() if device.type == "cpu" else True


class TorchBackend:
    """Runs a CRNN in PyTorch.

    Args:
        model: a CRNN (put in eval mode on ``device``).
        device: where the model runs; default CUDA if present, else CPU.
        precision: "fp32" (default) or "bf16" (autocast; about 2x faster on CPUs with AVX512-BF16
            or AMX and slower than fp32 on CPUs without them: ``native_bf16``; with 8 mantissa bits its logits are not fp32's and can flip the decoded
            text of ambiguous images, so it is opt-in; bench/bench_deploy.py measures the cost).
        channels_last: NHWC memory layout for the convolutions; None (default) turns it on:
            the same fp32 arithmetic, faster convolutions on CPU (bench/bench_inference.py).
    """

    name = "torch"
    uses_torch = True

    def __init__(self, model: CRNN, *, device: str | torch.device | None = None, precision: str = "fp32",
                 channels_last: bool | None = None) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.device = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.precision = precision
        self.channels_last = True if channels_last is None else channels_last
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        self.model = model.to(self.device).eval().to(memory_format=memory_format)
        self.maskable = bool(getattr(model, "maskable", False))  # torchvision trunks: equal-width batches

    def output_length(self, width: int) -> int:
        return int(output_length(width, self.model.config))

    def log_probs(self, batch: np.ndarray, widths: np.ndarray) -> np.ndarray:
        """float32 (N, C, H, W) and true widths (N,) -> float32 log-probs (N, T, K)."""
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            x = torch.from_numpy(batch).to(self.device)  # (N, C, H, W)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            logits = self.model(x, torch.from_numpy(widths))  # (N, C, H, W), (N,) -> (N, T, K)
            return torch.log_softmax(logits.float(), dim=-1).cpu().numpy()


def load_model(path: str | os.PathLike, *, expected_kind: str | None = None) -> tuple[CRNN, Alphabet, Frontend, str]:
    """A checkpoint's CRNN (weights loaded, on CPU, eval mode), alphabet, front-end and kind."""
    state = load_checkpoint(path)
    kind = state.get("kind", "text")
    check_ctc_model(kind, path)  # a classifier: crnn_ocr.classify reads it
    if expected_kind is not None and kind != expected_kind:
        raise CheckpointError(f"{path}: is a {kind} model, cannot read {expected_kind} input with it")
    config = ModelConfig.from_dict(state["model_config"])
    model = build_model(config)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not match the stored model config ({str(e).splitlines()[0]})") from None
    try:
        frontend = stored_frontend(state, source=path)
    except ValueError as e:
        raise CheckpointError(str(e)) from None
    return model.eval(), Alphabet.from_dict(state["alphabet"]), frontend, kind
