"""Training's crop jitter (``--crop-jitter``): a share of the images prepared as a random test-time view."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import png_bytes, render_word
from crnn_ocr.alphabet import Alphabet
from crnn_ocr.augment import JITTER_BORDER, JITTER_SIDE, JITTER_TRIM, JITTER_WIDTH, build_augmentation, random_view
from crnn_ocr.data.sources import generated_sample
from crnn_ocr.engine import TrainConfig, train
from crnn_ocr.engine.config import augment_spec, check_config
from crnn_ocr.frontend import ImageFrontend
from crnn_ocr.preprocessing import image_to_tensor, resize_to_height
from crnn_ocr.views import View


def test_random_views_stay_in_their_ranges_and_mix_the_kinds():
    rng = np.random.default_rng(0)
    views = [random_view(rng) for _ in range(4000)]
    widths = np.array([v.width for v in views])
    assert JITTER_WIDTH[0] <= widths.min() and widths.max() <= JITTER_WIDTH[1]
    assert widths.min() < 0.82 and widths.max() > 1.27  # the whole range is drawn
    kinds = {"border": 0, "trim": 0, "side": 0, "plain": 0}
    for v in views:
        extra = [k for k in ("border", "trim", "side") if getattr(v, k)]
        assert len(extra) <= 1
        kinds[extra[0] if extra else "plain"] += 1
        for k, (lo, hi) in (("border", JITTER_BORDER), ("trim", JITTER_TRIM), ("side", JITTER_SIDE)):
            assert getattr(v, k) == 0 or lo <= getattr(v, k) <= hi
    assert abs(kinds["border"] / 4000 - 0.3) < 0.03 and abs(kinds["trim"] / 4000 - 0.3) < 0.03
    assert abs(kinds["side"] / 4000 - 0.15) < 0.03 and abs(kinds["plain"] / 4000 - 0.25) < 0.03


def test_draw_view_follows_the_share_and_the_seed():
    off = build_augmentation("default", seed=1)
    assert all(off.draw_view() is None for _ in range(50))
    always = build_augmentation("none", crop_jitter=1.0)
    always.set_seed((4, 2))
    first = [always.draw_view() for _ in range(5)]
    assert all(isinstance(v, View) for v in first)
    always.set_seed((4, 2))
    assert [always.draw_view() for _ in range(5)] == first
    half = build_augmentation("none", crop_jitter=0.5, seed=3)
    drawn = sum(half.draw_view() is not None for _ in range(2000))
    assert 900 < drawn < 1100
    with pytest.raises(ValueError, match="crop_jitter must be a share"):
        build_augmentation("default", crop_jitter=1.5)


def test_the_front_end_prepares_the_drawn_view_and_nothing_else_changes():
    fe = ImageFrontend(height=32, channels=1, max_width=400, width_scale=1.5)
    image = render_word("jitter", height=40)
    data = png_bytes(image)
    plain = fe.training_input(data, build_augmentation("none"))
    assert torch.equal(plain, image_to_tensor(resize_to_height(image, 32, width_scale=1.5)))
    aug = build_augmentation("none", crop_jitter=1.0)
    widths = set()
    for i in range(12):
        aug.set_seed(i)
        view = aug.draw_view()
        expected = view.apply(image, 32, 1.5, max_width=400)
        if expected is None:  # a trim of a crop too small: the front-end's own preparation
            expected = resize_to_height(image, 32, width_scale=1.5)
        aug.set_seed(i)
        got = fe.training_input(data, aug)
        assert torch.equal(got, image_to_tensor(expected))
        widths.add(got.shape[-1])
    assert len(widths) > 6 and min(widths) < plain.shape[-1] < max(widths)
    squeezed = ImageFrontend(height=32, channels=1, max_width=100, width_scale=1.5)
    for i in range(12):
        aug.set_seed(i)
        assert squeezed.training_input(data, aug).shape[-1] <= 100  # --max-width holds for jittered crops


def test_generated_samples_are_seeded_before_the_view_and_stretched_to_fit_the_label():
    fe = ImageFrontend(height=32, channels=1, max_width=400, width_scale=1.0)
    alphabet = Alphabet.preset("alphanumeric")
    image = render_word("ab", height=32).copy()  # writable, as a generator draws it
    ids = alphabet.encode("aaaaaaaaaaaaaaaaaaaaaa")  # 22 repeats: 43 frames at least
    min_frames = lambda w: w // 4 + 1  # noqa: E731
    for seed in range(6):
        aug = build_augmentation("none", crop_jitter=1.0)
        a = generated_sample(image, ids, alphabet, fe, aug, np.random.default_rng(seed), min_frames)
        b = generated_sample(image, ids, alphabet, fe, aug, np.random.default_rng(seed), min_frames)
        assert torch.equal(a["image"], b["image"])
        assert min_frames(a["width"]) >= 43
    plain = generated_sample(image, ids[:1], alphabet, fe, build_augmentation("none"), np.random.default_rng(0), None)
    assert torch.equal(plain["image"], image_to_tensor(resize_to_height(image, 32)))


def test_config_passes_the_jitter_to_image_sources_only(tmp_path, word_lmdb):
    base = dict(data=[str(word_lmdb)], alphabet="alphanumeric", batch_size=4, max_steps=2, num_workers=1, progress=False,
                log_every=1, val_every=1000, save_every=1000, seed=3, schedule="constant", lr=1e-3)
    assert augment_spec(TrainConfig(**base)) is True
    assert augment_spec(TrainConfig(**base, crop_jitter=0.5)) == {"strength": "default", "crop_jitter": 0.5}
    assert augment_spec(TrainConfig(**base, augment=False, crop_jitter=0.5)) == {"strength": "none", "crop_jitter": 0.5}
    with pytest.raises(ValueError, match="--crop-jitter must be a share"):
        check_config(TrainConfig(**base, crop_jitter=-0.1))
    torch.set_num_threads(1)
    losses = []
    for jitter in (0.0, 1.0, 1.0):  # a worker process builds the augmentation from the pickled spec
        result = train(TrainConfig(**base, augment=False, crop_jitter=jitter, out_dir=str(tmp_path / f"run{len(losses)}")))
        losses.append(result.final_loss)
    assert losses[1] == losses[2] and losses[1] != losses[0]
