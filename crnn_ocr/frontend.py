"""Front-ends: how a source (an image, an audio clip) becomes the model's input. One small protocol.

    source (path, bytes, array) --prepare--> one input, (height, w) or (height, w, 3)
        --to_batch--> float32 (N, C, height, W_max), right-padded      (reading: ``Recognizer``)
    encoded bytes --input_width--> w from the header alone              (LMDB scans: ``LmdbDataset``)
    encoded bytes --training_input (+ augmentation)--> (C, height, w)   (training: ``LmdbDataset``)

Text and music staves read images (``ImageFrontend`` here: gray or RGB, height, width cap, width
stretch); PaddleOCR's recognizers read images prepared PaddleOCR's way (``PaddleRecFrontend``
here, kind "ppocr": ``crnn_ocr.ppocr``); speech reads log-mel spectrograms (``AudioFrontend``, in
the speech wing). The dataset, the trainer and the reader take a front-end and never ask which
one it is.

Checkpoints and ONNX metadata store ``to_dict()`` under the key ``frontend``; its ``kind`` picks
the class (``frontend_from_dict``). A wing adds its kind with ``register_frontend``; the kinds a
wing provides are listed in ``WING_KINDS`` (module names, imported the first time such a dict is
read: what entry points would declare for an installed plugin), so no core module imports a wing.
Files written before the front-ends stored ``preprocess`` instead: ``stored_frontend`` reads
both, and ``legacy_frontend_dict`` is the one place that converts the old form.

Each kind also describes its files (``Media``: extensions, how a bad file is counted, how one is
checked), which is what ``create_lmdb`` and ``tools/infer.py`` ask instead of branching on audio.
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import cv2
import numpy as np

from crnn_ocr.preprocessing import (
    DEFAULT_MIN_WIDTH,
    IMAGE_EXTENSIONS,
    decode_image,
    image_size,
    images_to_batch,
    resize_to_height,
    resized_width,
)
from crnn_ocr.views import Recheck

if TYPE_CHECKING:
    import torch

    from crnn_ocr.alphabet import Alphabet


@dataclass(frozen=True)
class Media:
    """The files a front-end reads and how their problems are named.

    ``check(data, full)``: whether encoded bytes are usable, fully decoded (``full``) or from the
    header only. ``requires``: optional modules reading needs (``crnn_ocr.extras.require``).
    Count phrases are ``(one, many)``.
    """

    name: str  # "image", "audio": create_lmdb's media= and CreateStats.media
    extensions: tuple[str, ...]
    check: Callable[[bytes, bool], bool]
    corrupt: tuple[str, str]  # LmdbDataset: a sample whose bytes do not decode
    too_wide: tuple[str, str]  # LmdbDataset: wider than max_width, and not squeezable
    undecodable: tuple[str, str]  # create_lmdb: a file that does not decode
    why_undecodable: str  # create_lmdb: the reason named beside a skipped file
    requires: tuple[str, ...] = ()

    def matches(self, path: str | os.PathLike) -> bool:
        """Whether ``path`` has one of this media's extensions."""
        return os.fspath(path).lower().endswith(self.extensions)


class Frontend(Protocol):
    """Turns sources into model inputs; see the module docstring.

    ``prepare`` gives one input at full length, however wide (the reader reads one wider than
    ``max_width`` in overlapping windows); ``training_input`` gives what training sees (an image
    squeezed to ``max_width``; audio is never squeezed: ``LmdbDataset`` skips audio wider than it).
    """

    kind: ClassVar[str]
    media: ClassVar[Media]
    height: int  # model input rows: image height, mel bins
    channels: int  # 1 or 3
    max_width: int | None  # widest input the model was trained on (None: no limit)

    def prepare(self, source: Any, *, sample_rate: int | None = None, use_torch: bool = True) -> np.ndarray:
        """One source -> one input, (height, w[, C]); ``ValueError`` naming a bad source.
        ``use_torch=False``: compute without torch (the onnxruntime deployment)."""
        ...

    def to_batch(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        """Prepared inputs -> float32 (N, C, height, W_max), right-padded by repeating the last column."""
        ...

    def input_width(self, data: bytes | memoryview) -> int | None:
        """Width ``training_input`` gives for encoded bytes, from the header only; None if unreadable."""
        ...

    def training_input(self, data: bytes | memoryview, augment: Any = None) -> torch.Tensor:
        """Encoded bytes -> float32 (C, height, w) tensor, augmented when ``augment`` is given;
        ``ValueError`` when the bytes do not decode."""
        ...

    def augmentation(self, spec: Any) -> Any:
        """Training augmentation from ``LmdbDataset``'s ``augment``: False/None (none), True
        (default), a strength name or a ready object; None when there is none."""
        ...

    def decoder_options(self, alphabet: Alphabet, **options: Any) -> dict[str, Any]:
        """``CTCDecoder`` options for a reading of this kind (speech: an utterance is a
        sequence of words, so a lexicon decodes through the trie)."""
        ...

    def to_dict(self) -> dict[str, Any]:
        ...


# ------------------------------------------------------------------------------------ images
def _check_image(data: bytes, full: bool) -> bool:
    if not full:
        return bool(data)
    try:
        decode_image(data, 1)
    except ValueError:
        return False
    return True


IMAGE_MEDIA = Media(
    "image", IMAGE_EXTENSIONS, _check_image,
    corrupt=("corrupt image", "corrupt images"),
    too_wide=("image wider than the max width", "images wider than the max width"),
    undecodable=("undecodable image", "undecodable images"),
    why_undecodable="undecodable image",
)


@dataclass(frozen=True)
class ImageFrontend:
    """Gray (``channels=1``) or RGB (3) images resized to ``height`` keeping the aspect ratio,
    then stretched ``width_scale`` times in width (``preprocessing.resize_to_height``); training
    squeezes wider ones to ``max_width``. A model is read with the settings it was trained with.
    ``recheck``: how the recognizer takes a second look at unsure readings (``crnn_ocr.views.Recheck``;
    set at export, ``tools/export.py --recheck``; None: one reading)."""

    kind: ClassVar[str] = "image"
    media: ClassVar[Media] = IMAGE_MEDIA

    height: int = 32
    channels: int = 1
    max_width: int | None = None
    width_scale: float = 1.0
    recheck: Recheck | None = None

    def __post_init__(self) -> None:
        if self.recheck is not None and not isinstance(self.recheck, Recheck):
            raise ValueError(f"recheck must be a crnn_ocr.views.Recheck, got {type(self.recheck).__name__}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if not self.width_scale > 0:
            raise ValueError(f"width_scale must be positive, got {self.width_scale}")

    def prepare(self, source: Any, *, sample_rate: int | None = None, use_torch: bool = True) -> np.ndarray:
        """A path, encoded bytes or an array -> uint8 (height, w) or (height, w, 3), full resolution."""
        if sample_rate is not None:
            raise ValueError("sample_rate applies to audio; this model reads images")
        return resize_to_height(decode_image(source, self.channels), self.height, width_scale=self.width_scale)

    def to_batch(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        return images_to_batch(list(inputs))  # uint8 -> float32 (N, C, H, W) in [-1, 1]

    def input_width(self, data: bytes | memoryview) -> int | None:
        size = image_size(data)
        if size is None:
            return None
        return resized_width(size[0], size[1], self.height, max_width=self.max_width, min_width=DEFAULT_MIN_WIDTH,
                             width_scale=self.width_scale)

    def training_input(self, data: bytes | memoryview, augment: Any = None) -> torch.Tensor:
        from crnn_ocr.preprocessing import image_to_tensor

        img = self.prepare_training(decode_image(data, self.channels), augment)  # (height, w[, 3]) uint8
        if augment is not None:
            img = augment(img)  # same shape
        return image_to_tensor(img)  # (C, height, w)

    def prepare_training(self, image: np.ndarray, augment: Any = None) -> np.ndarray:
        """A decoded training image -> (height, w[, C]) uint8: resized as for reading, or as the
        random crop view the augmentation draws (``Augmentation.draw_view``: ``--crop-jitter``)."""
        size = {"max_width": self.max_width, "min_width": DEFAULT_MIN_WIDTH}
        draw_view = getattr(augment, "draw_view", None)
        view = draw_view() if draw_view is not None else None
        if view is not None:
            out = view.apply(image, self.height, self.width_scale, **size)
            if out is not None:
                return out
        return resize_to_height(image, self.height, width_scale=self.width_scale, **size)

    def augmentation(self, spec: Any) -> Callable[[np.ndarray], np.ndarray] | None:
        """False/None, True ("default"), a strength name (``crnn_ocr.augment``), a mapping of
        ``build_augmentation``'s arguments (``{"strength": "default", "crop_jitter": 0.5}``), or a
        callable on uint8 images."""
        if spec is None or spec is False:
            return None
        if callable(spec):
            return spec
        from crnn_ocr.augment import build_augmentation

        if isinstance(spec, Mapping):
            return build_augmentation(**spec)
        return build_augmentation("default" if spec is True else spec)

    def decoder_options(self, alphabet: Alphabet, **options: Any) -> dict[str, Any]:
        return options

    def to_dict(self) -> dict[str, Any]:
        d = {"kind": self.kind, "height": self.height, "channels": self.channels, "max_width": self.max_width,
             "width_scale": self.width_scale}
        return d if self.recheck is None else {**d, "recheck": self.recheck.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ImageFrontend:
        max_width = d.get("max_width")
        return cls(height=int(d["height"]), channels=int(d["channels"]), max_width=None if max_width is None else int(max_width),
                   width_scale=float(d.get("width_scale", 1.0)),
                   recheck=None if d.get("recheck") is None else Recheck.from_dict(d["recheck"]))


# ------------------------------------------------------------------------------------ PaddleOCR
def _paddle_unit() -> np.ndarray:
    """uint8 value -> float32 as PaddleOCR normalizes it: ``(x / 255 - 0.5) / 0.5``, the same float32 steps."""
    x = np.arange(256, dtype=np.float32) / 255
    x -= 0.5
    x /= 0.5
    return x


_PADDLE_UNIT = _paddle_unit()


def paddle_resized_width(width: int, height_in: int, height: int = 48, pad_width: int = 320) -> int:
    """Width PaddleOCR resizes a ``height_in x width`` image to, read alone (its ``resize_norm_img``
    with the batch's widest ratio = the image's own): ``ceil(height * w / h)``, at most the width
    it pads to, ``int(height * max(pad_width / height, w / h))``."""
    ratio = width / float(height_in)
    padded = int(height * max(pad_width / height, ratio))
    return min(int(math.ceil(height * ratio)), padded)


@dataclass(frozen=True)
class PaddleRecFrontend:
    """PaddleOCR's preprocessing for its CTC recognizers (``resize_norm_img`` of PaddleOCR's
    ``predict_rec.py``, as RapidOCR runs it): an RGB image resized to ``height`` keeping its
    ratio (``paddle_resized_width``, OpenCV bilinear); the batch is given to the model in BGR
    (PaddleOCR decodes with OpenCV and trains on BGR), as float32 ``(x / 255 - 0.5) / 0.5`` in
    [-1, 1], right-padded with zeros to at least ``pad_width`` columns (PaddleOCR's
    ``rec_image_shape`` [3, 48, 320]).

    PaddleOCR pads a batch to its widest ratio, so its reading of a word depends on the batch;
    here a model without masking is only given equal widths (``Recognizer``), so every input is
    read as PaddleOCR reads it alone. ``max_width``: wider inputs are read in overlapping
    windows (PaddleX squeezes them to 3200 columns). Reading only: training these models is
    PaddleOCR's job (``training_input`` gives the unpadded input, for completeness).
    """

    kind: ClassVar[str] = "ppocr"
    media: ClassVar[Media] = IMAGE_MEDIA

    height: int = 48
    max_width: int | None = 3200
    pad_width: int = 320
    bgr: bool = True
    channels: int = field(default=3, init=False)  # the models read colour

    def __post_init__(self) -> None:
        if self.height < 1 or self.pad_width < 1:
            raise ValueError(f"height and pad_width must be positive, got {self.height}, {self.pad_width}")
        if self.max_width is not None and self.max_width < self.pad_width:
            raise ValueError(f"max_width ({self.max_width}) must be at least pad_width ({self.pad_width})")

    def prepare(self, source: Any, *, sample_rate: int | None = None, use_torch: bool = True) -> np.ndarray:
        """A path, encoded bytes or an array -> uint8 RGB (height, w, 3), w = ``paddle_resized_width``."""
        if sample_rate is not None:
            raise ValueError("sample_rate applies to audio; this model reads images")
        img = decode_image(source, 3)  # (H, W, 3) RGB
        h, w = img.shape[:2]
        return cv2.resize(img, (paddle_resized_width(w, h, self.height, self.pad_width), self.height))

    def to_batch(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        """uint8 RGB (height, w_i, 3) -> float32 (N, 3, height, max(pad_width, w_i)), BGR, zero-padded."""
        if not inputs:
            raise ValueError("to_batch needs at least one input")
        total = max(self.pad_width, *(int(im.shape[1]) for im in inputs))
        out = np.zeros((len(inputs), 3, self.height, total), dtype=np.float32)
        for i, im in enumerate(inputs):
            if im.dtype != np.uint8 or im.ndim != 3 or im.shape[0] != self.height or im.shape[2] != 3:
                raise ValueError(f"input {i}: expected uint8 ({self.height}, w, 3), got {im.dtype} {im.shape}")
            chw = (im[:, :, ::-1] if self.bgr else im).transpose(2, 0, 1)  # (3, height, w)
            out[i, :, :, : im.shape[1]] = _PADDLE_UNIT[chw]
        return out

    def input_width(self, data: bytes | memoryview) -> int | None:
        size = image_size(data)
        return None if size is None else paddle_resized_width(size[0], size[1], self.height, self.pad_width)

    def training_input(self, data: bytes | memoryview, augment: Any = None) -> torch.Tensor:
        import torch

        img = self.prepare(bytes(data))
        if augment is not None:
            img = augment(img)
        return torch.from_numpy(self.to_batch([img])[0, :, :, : img.shape[1]].copy())  # (3, height, w)

    def augmentation(self, spec: Any) -> Callable[[np.ndarray], np.ndarray] | None:
        return ImageFrontend.augmentation(ImageFrontend(), spec)

    def decoder_options(self, alphabet: Alphabet, **options: Any) -> dict[str, Any]:
        return options

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "height": self.height, "max_width": self.max_width, "pad_width": self.pad_width,
                "bgr": self.bgr}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PaddleRecFrontend:
        max_width = d.get("max_width", 3200)
        return cls(height=int(d.get("height", 48)), max_width=None if max_width is None else int(max_width),
                   pad_width=int(d.get("pad_width", 320)), bgr=bool(d.get("bgr", True)))


# ------------------------------------------------------------------------------------ kinds
_KINDS: dict[str, Any] = {ImageFrontend.kind: ImageFrontend, PaddleRecFrontend.kind: PaddleRecFrontend}

WING_KINDS = {"audio": "crnn_ocr.speech"}
"""Front-end kinds a wing provides -> the module that registers them when imported."""


def register_frontend(cls: Any) -> Any:
    """Make ``cls`` (a Frontend class with ``kind``, ``media`` and ``from_dict``) readable by
    ``frontend_from_dict``; usable as a class decorator."""
    _KINDS[cls.kind] = cls
    return cls


def frontend_class(kind: str) -> Any:
    """The Frontend class of ``kind`` ("image", "audio", ...)."""
    if kind not in _KINDS and kind in WING_KINDS:
        importlib.import_module(WING_KINDS[kind])  # registers the kind
    if kind not in _KINDS:
        raise ValueError(f"unknown front-end kind {kind!r}; known: {', '.join(sorted({*_KINDS, *WING_KINDS}))}")
    return _KINDS[kind]


def all_media() -> list[Media]:
    """Every kind's media, images first (``create_lmdb``'s media="auto" tries them in this order);
    kinds reading the same media ("image", "ppocr") list it once."""
    media = {}
    for kind in dict.fromkeys([*_KINDS, *WING_KINDS]):
        found = frontend_class(kind).media
        media.setdefault(found.name, found)
    return list(media.values())


def media_named(name: str) -> Media:
    """The media called ``name`` ("image", "audio")."""
    for media in all_media():
        if media.name == name:
            return media
    raise ValueError(f"unknown media {name!r}; known: {', '.join(m.name for m in all_media())}")


def frontend_from_dict(d: Mapping[str, Any]) -> Frontend:
    """Inverse of ``Frontend.to_dict``: the class named by ``d["kind"]``."""
    if "kind" not in d:
        raise ValueError(f"a front-end dict needs a 'kind' key, got keys {sorted(d)}")
    return frontend_class(d["kind"]).from_dict(d)


# ------------------------------------------------------------------------------------ stored settings
def stored_frontend(stored: Mapping[str, Any], *, source: str | os.PathLike = "<model>") -> Frontend:
    """The front-end a checkpoint state or an ONNX file's metadata was saved with: its ``frontend``
    dict, or for files written before the front-ends the conversion of their ``preprocess``."""
    if "frontend" in stored:
        return frontend_from_dict(stored["frontend"])
    return frontend_from_dict(legacy_frontend_dict(stored, source=source))


def legacy_frontend_dict(stored: Mapping[str, Any], *, source: str | os.PathLike = "<model>") -> dict[str, Any]:
    """The front-end dict of a file in the old form.

    Old files store ``preprocess = {height, channels, max_width[, width_scale][, audio]}``:
    ``audio`` (an audio front-end's settings) makes it a speech model's log-mel front-end, else it
    describes images. The oldest have no ``preprocess``: the model config's height and channels.
    A speech model without ``audio`` cannot be read (``ValueError`` naming ``source``).
    """
    config = stored.get("model_config") or {}
    pre = stored.get("preprocess") or {"height": config.get("height", 32), "channels": config.get("in_channels", 1)}
    max_width = pre.get("max_width")
    if pre.get("audio"):
        return {**pre["audio"], "kind": "audio", "max_width": max_width}
    if stored.get("kind") == "speech":
        raise ValueError(f"{os.fspath(source)}: a speech model without its audio front-end settings (preprocess.audio)")
    return {"kind": "image", "height": pre["height"], "channels": pre["channels"], "max_width": max_width,
            "width_scale": pre.get("width_scale", 1.0)}
