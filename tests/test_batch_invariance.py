"""A reading must not depend on the other images in its batch.

Padding columns of a right-padded batch are masked in the trunk (``masked_trunk``) and the
BiLSTMs run on packed sequences, so an image's logits in any batch equal its logits alone; the
recognizers (PyTorch and onnxruntime) and the trainer's loss rely on it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from crnn_ocr.decoding import CTCDecoder
from crnn_ocr.engine import ctc_loss
from crnn_ocr.model import ARCHS, ModelConfig, build_model, output_length
from crnn_ocr.pretrained import MODELS
from crnn_ocr.recognizer import Recognizer, load_recognizer
from crnn_ocr.torch_backend import TorchBackend, load_model

MASKED_ARCHS = ("crnn", "crnn_compact", "dtrb_vgg", "ds2")


def _padded(images: list[torch.Tensor]) -> torch.Tensor:
    """[(C, H, w_i)] -> (N, C, H, W) right-padded by repeating the last column, as collate_batch does."""
    width = max(im.shape[2] for im in images)
    return torch.stack([torch.cat([im, im[:, :, -1:].expand(-1, -1, width - im.shape[2])], 2) for im in images])


@pytest.mark.parametrize("arch", MASKED_ARCHS)
def test_logits_in_a_padded_batch_equal_the_logits_alone(arch):
    torch.manual_seed(0)
    model = build_model(ModelConfig(num_classes=11, arch=arch, hidden_size=32)).eval()
    assert model.maskable
    widths = [16, 23, 40, 97, 150, 151]
    images = [torch.rand(1, 32, w) * 2 - 1 for w in widths]
    with torch.inference_mode():
        batch = model(_padded(images), torch.tensor(widths))  # (6, T_max, 11)
        unmasked = model(_padded(images))
        for i, (im, w) in enumerate(zip(images, widths)):
            alone = model(im[None])[0]  # (T_i, 11)
            assert alone.shape[0] == output_length(w, model.config)
            assert torch.allclose(batch[i, : alone.shape[0]], alone, atol=1e-5)
        # without the widths the padding does reach the narrow images (what the masking fixes)
        t0 = output_length(widths[0], model.config)
        assert (unmasked[0, :t0] - model(images[0][None])[0]).abs().max() > 1e-3
        # every image at full width: the same as no widths at all
        full = _padded(images)
        assert torch.equal(model(full, torch.full((6,), full.shape[3])), model(full))


def test_torchvision_trunks_are_not_masked_and_say_so():
    unmaskable = {a for a in ARCHS if not build_model(ModelConfig(num_classes=5, arch=a)).maskable}
    assert unmaskable == {"resnet", "resnet18", "resnet34", "mobilenetv3", "mobilenetv3_small", "mobilenetv3_large"}


def test_the_ctc_loss_of_an_image_does_not_depend_on_its_batch():
    torch.manual_seed(1)
    model = build_model(ModelConfig(num_classes=11, arch="crnn_compact", hidden_size=32)).eval()
    widths = [24, 60, 130]
    images = [torch.rand(1, 32, w) * 2 - 1 for w in widths]
    targets = [torch.tensor([1, 2]), torch.tensor([3, 4, 5, 6]), torch.tensor([7, 8, 9])]

    def losses(batch_images, batch_widths, batch_targets):
        logits = model(batch_images, torch.tensor(batch_widths))
        lengths = torch.tensor([output_length(w, model.config) for w in batch_widths])
        return [float(ctc_loss(logits[i : i + 1, : lengths[i]], batch_targets[i], lengths[i : i + 1],
                               torch.tensor([len(batch_targets[i])]))) for i in range(len(batch_widths))]

    with torch.inference_mode():
        together = losses(_padded(images), widths, targets)
        alone = [losses(im[None], [w], [t])[0] for im, w, t in zip(images, widths, targets)]
    assert np.allclose(together, alone, atol=1e-5)


def rendered_words(count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` gray word crops of 1-24 letters (so widths from ~20 to ~600 px), varied size and contrast."""
    rng = np.random.default_rng(seed)
    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    crops = []
    for _ in range(count):
        word = "".join(rng.choice(list(letters), int(rng.integers(1, 25))))
        size = int(rng.integers(18, 40))
        font = ImageFont.load_default(size)
        left, top, right, bottom = font.getbbox(word)
        fg, bg = (int(rng.integers(0, 90)), int(rng.integers(170, 256)))
        if rng.random() < 0.3:
            fg, bg = bg, fg
        img = Image.new("L", (right - left + 12, bottom - top + 10), bg)
        ImageDraw.Draw(img).text((6 - left, 5 - top), word, fill=fg, font=font)
        crops.append(np.asarray(img))
    return crops


def _assert_batch_invariant(rec, prepared: list[np.ndarray]) -> None:
    alone = [rec.read_prepared([p])[0] for p in prepared]
    for batch_size in (8, 32, len(prepared)):
        batched = rec.read_prepared(prepared, batch_size=batch_size)
        assert [r.text for r in batched] == [r.text for r in alone], batch_size
        assert max(abs(a.score - b.score) for a, b in zip(alone, batched)) <= 1e-4, batch_size
        assert [r.spans for r in batched] == [r.spans for r in alone], batch_size


SHARED_TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "text"  # real crops, on development machines only


def real_crops(count: int = 200) -> list[np.ndarray]:
    """The first ``count // 2`` ICDAR 2015 and IIIT5K training crops, if ../shared is there."""
    if not SHARED_TEXT.is_dir():
        pytest.skip("../shared/data/text is not on this machine (development data, not in the project)")
    paths = sorted((SHARED_TEXT / "ic15_train").glob("*.png"))[: count // 2]
    paths += sorted((SHARED_TEXT / "iiit5k_train").glob("*.jpg"))[: count - len(paths)]
    return [np.asarray(Image.open(p).convert("RGB")) for p in paths]


@pytest.fixture(scope="module", params=["rendered", "real"])
def word_crops(request):
    return rendered_words(200) if request.param == "rendered" else real_crops(200)


def test_shipped_model_reads_the_same_alone_and_in_any_batch_torch(word_crops):
    torch.set_num_threads(1)
    rec = load_recognizer(MODELS["english"].path, backend="torch", device="cpu")
    prepared = [rec.prepare(c) for c in word_crops]
    assert len({p.shape[1] for p in prepared}) > 100  # truly varied widths
    _assert_batch_invariant(rec, prepared)


def test_shipped_model_reads_the_same_alone_and_in_any_batch_onnx(word_crops):
    pytest.importorskip("onnxruntime")
    rec = load_recognizer(MODELS["english"].onnx_path, backend="onnx", threads=1)
    assert rec.backend.maskable
    _assert_batch_invariant(rec, [rec.prepare(c) for c in word_crops])


def test_an_unmasked_trunk_is_read_in_equal_width_batches(word_crops):
    torch.manual_seed(2)
    _, alphabet, frontend, _ = load_model(MODELS["english"].path)
    model = build_model(ModelConfig(num_classes=alphabet.num_classes, arch="resnet", hidden_size=16))
    rec = Recognizer(TorchBackend(model, device="cpu"), frontend, CTCDecoder(alphabet, beam_width=1))
    assert not rec.backend.maskable
    prepared = [rec.prepare(c) for c in word_crops[:40]] + [rec.prepare(word_crops[0])] * 3  # some equal widths
    alone = [rec.read_prepared([p])[0] for p in prepared]
    batched = rec.read_prepared(prepared, batch_size=8)
    assert [r.text for r in batched] == [r.text for r in alone]
    assert max(abs(a.score - b.score) for a, b in zip(alone, batched)) <= 1e-4


def test_an_onnx_file_without_the_widths_input_is_read_in_equal_width_batches(tmp_path, word_crops):
    pytest.importorskip("onnxruntime")
    import json
    import warnings

    import onnx

    from crnn_ocr.deploy.export import export_metadata
    from crnn_ocr.onnx_backend import METADATA_KEY

    model, _, meta = export_metadata(MODELS["english"].path)

    class ImagesOnly(torch.nn.Module):  # the graph of exports made before the widths input
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, images):
            return self.model(images)

    path = tmp_path / "old.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(ImagesOnly(), (torch.zeros(2, 1, 32, 64),), str(path), dynamo=False, opset_version=17,
                          input_names=["images"], output_names=["logits"],
                          dynamic_axes={"images": {0: "batch", 3: "width"}, "logits": {0: "batch", 1: "frames"}})
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    onnx.save(proto, str(path))
    rec = load_recognizer(path, backend="onnx", threads=1)
    assert not rec.backend.maskable
    prepared = [rec.prepare(c) for c in word_crops[:30]]
    alone = [rec.read_prepared([p])[0] for p in prepared]
    assert [r.text for r in rec.read_prepared(prepared, batch_size=30)] == [r.text for r in alone]
