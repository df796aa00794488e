"""Test-time adaptation: a model's BatchNorm statistics re-estimated on unlabelled inputs (AdaBN).
``crnn_ocr.self_training`` goes further: training on a recognizer's own readings of them.

    rec = load_recognizer("runs/speech/best.pt")    # or crnn_ocr.classify.load_classifier(...)
    rec.adapt(["new_speaker/0.wav", "new_speaker/1.wav", ...])     # no labels
    rec.read("new_speaker/2.wav")

Every BatchNorm layer holds the mean and variance of its inputs over the training data and
normalizes with them at inference. Inputs from a domain the training data lacked (a speaker never
heard, another microphone, another scanner) shift those statistics; replacing them by the new
domain's, with no label and no gradient, undoes part of the shift (Li et al. 2016, "Revisiting
Batch Normalization For Practical Domain Adaptation", AdaBN). Only the statistics change: the
learned weights, the recurrent layers and the output layer stay as trained.

How they are measured: each input runs alone (no padding enters the statistics, and the result
does not depend on batching), and the layers are re-estimated in the order the forward pass meets
them, so layer k is measured on what it will be fed at inference, with the layers before it
already adapted; each pass stops at the layer it measures. A layer's new ``running_mean`` is the
mean over every position (batch, height, width) of every input, its ``running_var`` the unbiased
variance, as BatchNorm's training keeps them. The inputs should be many (tens at least) and from
one domain: the statistics of a handful of clips are noisy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

_BatchNorm = torch.nn.modules.batchnorm._BatchNorm


class _Stop(Exception):
    """Ends a forward pass at the layer being measured."""


def batchnorm_layers(model: torch.nn.Module) -> list[_BatchNorm]:
    """The model's BatchNorm layers that keep running statistics, in module order."""
    return [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


def adapt_batchnorm(model: torch.nn.Module, inputs: Sequence[Any], run: Callable[[Any], Any]) -> int:
    """Re-estimate the running mean and variance of every BatchNorm layer of ``model`` on
    ``inputs`` (each one input as ``run(input)`` feeds it to the model, e.g. a (1, C, H, W) tensor),
    layer by layer in forward order (see the module docstring). The model is left in eval mode.
    Returns the number of layers adapted; ``ValueError`` when there are no inputs or no BatchNorm
    layer that any input reaches."""
    if len(inputs) == 0:
        raise ValueError("adapt: no inputs to measure statistics on")
    layers = batchnorm_layers(model)
    if not layers:
        raise ValueError(f"adapt: the model ({type(model).__name__}) has no BatchNorm layers to adapt")
    model.eval()
    order: list[_BatchNorm] = []

    def record(module: torch.nn.Module, args: tuple) -> None:
        if module not in order:
            order.append(module)  # type: ignore[arg-type]

    handles = [m.register_forward_pre_hook(record) for m in layers]
    try:
        with torch.no_grad():
            run(inputs[0])
    finally:
        for h in handles:
            h.remove()
    for layer in order:
        total = torch.zeros(layer.num_features, dtype=torch.float64)
        squares = torch.zeros(layer.num_features, dtype=torch.float64)
        count = 0

        def measure(module: torch.nn.Module, args: tuple) -> None:
            nonlocal total, squares, count
            x = args[0].detach().to(torch.float64).transpose(0, 1).reshape(args[0].shape[1], -1)  # (C, positions)
            total += x.sum(1).cpu()
            squares += (x * x).sum(1).cpu()
            count += x.shape[1]
            raise _Stop

        handle = layer.register_forward_pre_hook(measure)
        try:
            with torch.no_grad():
                for item in inputs:
                    try:
                        run(item)
                    except _Stop:
                        pass
        finally:
            handle.remove()
        mean = total / count
        var = (squares / count - mean * mean).clamp_min(0) * (count / max(count - 1, 1))
        assert layer.running_mean is not None and layer.running_var is not None
        layer.running_mean.copy_(mean.to(layer.running_mean.dtype))
        layer.running_var.copy_(var.to(layer.running_var.dtype))
    return len(order)


def adapt_torch_backend(backend: Any, frontend: Any, prepared: Sequence[Any], what: str) -> int:
    """``adapt_batchnorm`` for a reader's torch backend (``backend.model``, ``backend.device``) on
    prepared inputs (``frontend.prepare``'s), each run as a batch of one (``frontend.to_batch``)
    with its width; ``ValueError`` naming ``what`` for a backend that is not PyTorch (an ONNX
    export's statistics are fixed in the file: adapt the checkpoint, then export it)."""
    model = getattr(backend, "model", None)
    if not getattr(backend, "uses_torch", False) or not isinstance(model, torch.nn.Module):
        raise ValueError(f"{what}: adapting needs the PyTorch backend (a .pt checkpoint), not {getattr(backend, 'name', backend)!r}")
    device = getattr(backend, "device", torch.device("cpu"))

    def run(x: Any) -> Any:
        batch = torch.from_numpy(frontend.to_batch([x])).to(device)  # (1, C, H, W)
        return model(batch, torch.tensor([int(x.shape[1])], dtype=torch.int64).to(device))

    return adapt_batchnorm(model, prepared, run)


def adapt_to_files(reader: Any, paths: Iterable[str], on_skip: Callable[[str, ValueError], None] | None = None) -> tuple[int, int]:
    """A reader's (``Recognizer``, ``Classifier``) ``adapt_prepared`` on every file of ``paths``
    that prepares; ``on_skip(path, error)`` for each that does not (unreadable, too short).
    Returns (layers adapted, inputs used); ``ValueError`` when none prepares or the reader
    cannot adapt. What ``infer.py --adapt`` and ``tools/adapt.py`` run."""
    prepared, total = [], 0
    for path in paths:
        total += 1
        try:
            prepared.append(reader.prepare(path))
        except ValueError as e:
            if on_skip is not None:
                on_skip(path, e)
    if not prepared:
        raise ValueError(f"none of the {total} inputs could be read")
    return reader.adapt_prepared(prepared), len(prepared)
