"""Front-ends: one protocol for images and audio, dicts with a kind, the old ``preprocess`` form read
the same, and the image front-end giving the pixels the old pipeline gave."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

from conftest import png_bytes, render_word
from crnn_ocr.frontend import (
    IMAGE_MEDIA,
    ImageFrontend,
    all_media,
    frontend_from_dict,
    legacy_frontend_dict,
    media_named,
    stored_frontend,
)
from crnn_ocr.preprocessing import decode_image, image_to_tensor, images_to_batch, resize_to_height

torch.set_num_threads(1)


def test_image_frontend_round_trips_through_its_dict():
    fe = ImageFrontend(height=48, channels=3, max_width=300, width_scale=1.25)
    d = fe.to_dict()
    assert d == {"kind": "image", "height": 48, "channels": 3, "max_width": 300, "width_scale": 1.25}
    assert frontend_from_dict(json.loads(json.dumps(d))) == fe  # plain data: JSON in ONNX metadata
    with pytest.raises(ValueError, match="unknown front-end kind 'smell'"):
        frontend_from_dict({"kind": "smell"})
    with pytest.raises(ValueError, match="'kind' key"):
        frontend_from_dict({"height": 32})
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        ImageFrontend(channels=2)


def test_image_frontend_gives_the_pixels_of_the_old_pipeline():
    fe = ImageFrontend(height=32, channels=1, max_width=60, width_scale=1.5)
    word = render_word("window", height=40)  # (40, w) uint8
    data = png_bytes(word)
    full = fe.prepare(data)
    assert np.array_equal(full, resize_to_height(decode_image(data, 1), 32, width_scale=1.5))  # reading: not squeezed
    assert full.shape[1] > 60
    squeezed = resize_to_height(decode_image(data, 1), 32, max_width=60, width_scale=1.5)
    train = fe.training_input(data)
    assert torch.equal(train, image_to_tensor(squeezed)) and fe.input_width(data) == train.shape[-1] == 60
    assert np.array_equal(fe.to_batch([full, squeezed]), images_to_batch([full, squeezed]))
    flip = lambda img: 255 - img  # noqa: E731 (any callable on uint8 images is an augmentation)
    assert torch.equal(fe.training_input(data, fe.augmentation(flip)), image_to_tensor(255 - squeezed))
    assert fe.augmentation(False) is None and fe.augmentation("light") is not None
    assert fe.input_width(b"not an image") is None
    with pytest.raises(ValueError, match="not a decodable image"):
        fe.training_input(b"not an image")
    with pytest.raises(ValueError, match="sample_rate applies to audio"):
        fe.prepare(word, sample_rate=8000)


def test_audio_frontend_implements_the_same_protocol():
    sf = pytest.importorskip("soundfile")
    fe = frontend_from_dict({"kind": "audio", "sample_rate": 8000, "n_mels": 32, "max_width": 300})
    assert (fe.kind, fe.height, fe.channels, fe.max_width, fe.media.name) == ("audio", 32, 1, 300, "audio")
    assert frontend_from_dict(fe.to_dict()) == fe
    t = np.arange(4000) / 8000
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 8000, format="WAV", subtype="PCM_16")
    data = buf.getvalue()
    spec = fe.prepare(data)
    assert spec.dtype == np.float32 and spec.shape == (32, fe.num_frames(4000)) == (32, fe.input_width(data))
    assert np.allclose(fe.prepare(data, use_torch=False), spec, atol=1e-4)  # the numpy log-mel for onnxruntime
    assert torch.equal(fe.training_input(data), torch.from_numpy(spec)[None])
    batch = fe.to_batch([spec, spec[:, :20]])
    assert batch.shape == (2, 1, 32, spec.shape[1]) and np.array_equal(batch[1, 0, :, 20:], np.repeat(spec[:, 19:20], spec.shape[1] - 20, 1))
    assert fe.input_width(b"RIFF junk") is None


def test_the_old_preprocess_form_converts_in_one_place():
    """Checkpoints and ONNX files written before the front-ends stored ``preprocess``."""
    english = {"kind": "text", "preprocess": {"height": 32, "channels": 1, "max_width": 400, "width_scale": 1.5}}
    assert stored_frontend(english) == ImageFrontend(32, 1, 400, 1.5)
    score = {"kind": "score", "preprocess": {"height": 64, "channels": 1, "max_width": 1024}}
    assert stored_frontend(score) == ImageFrontend(64, 1, 1024, 1.0)
    audio = {"sample_rate": 8000, "n_mels": 32, "win_ms": 25.0, "hop_ms": 10.0, "n_fft": None, "fmin": 20.0, "fmax": None}
    speech = {"kind": "speech", "preprocess": {"height": 32, "channels": 1, "max_width": 800, "audio": audio}}
    assert legacy_frontend_dict(speech) == {"kind": "audio", **audio, "max_width": 800}
    oldest = {"kind": "text", "model_config": {"num_classes": 5, "height": 48, "in_channels": 3}}  # no preprocess at all
    assert stored_frontend(oldest) == ImageFrontend(48, 3, None, 1.0)
    with pytest.raises(ValueError, match="deaf.pt: a speech model without its audio front-end settings"):
        stored_frontend({"kind": "speech", "preprocess": {"height": 32, "channels": 1}}, source="deaf.pt")
    new = {"kind": "text", "frontend": ImageFrontend(40).to_dict(), "preprocess": english["preprocess"]}
    assert stored_frontend(new) == ImageFrontend(40)  # the new key wins


def test_media_describe_the_files_of_each_kind():
    assert [m.name for m in all_media()] == ["image", "audio"]  # images first: what media="auto" tries first
    assert media_named("image") is IMAGE_MEDIA and IMAGE_MEDIA.matches("A.PNG") and not IMAGE_MEDIA.matches("a.wav")
    assert media_named("audio").matches("clip.flac") and media_named("audio").requires == ("soundfile", "scipy")
    assert IMAGE_MEDIA.check(png_bytes(render_word("ok")), True) and not IMAGE_MEDIA.check(b"junk", True)
    assert IMAGE_MEDIA.check(b"junk", False) and not IMAGE_MEDIA.check(b"", False)  # header-only: non-empty
    with pytest.raises(ValueError, match="unknown media 'smell'"):
        media_named("smell")
