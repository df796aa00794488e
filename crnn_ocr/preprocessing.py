"""Image loading, keep-ratio resizing, tensor conversion and batch padding.

The steps of the image front-end (``crnn_ocr.frontend.ImageFrontend``), which the dataset, the
Recognizer and the export's calibration all go through, so training and inference see the same
pixels:

    bytes / path / array --decode_image--> uint8 (H, W) or (H, W, 3) RGB
        --resize_to_height--> uint8 (height, w) --image_to_tensor--> float (C, height, w) in [-1, 1]
        --pad_batch--> (N, C, height, W_max)

``images_to_batch`` does the last two steps in numpy (same values, bit for bit) for the torch-free
ONNX deployment path: this module imports torch only inside the two torch functions.
``image_size`` reads an encoded image's size from its header (LMDB scans), and
``IMAGE_EXTENSIONS`` are the files taken as images everywhere.

Padding choice: narrow images (``min_width``) and batches are padded on the right by repeating
the last column, as deep-text-recognition-benchmark does. The last column of a word crop is
almost always background, so this adapts to dark-on-light and light-on-dark alike, where a
constant would draw a hard edge.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    import torch

DEFAULT_MIN_WIDTH = 16
"""Narrow crops (a lone "1" or "i") are padded to this width; it covers every arch's minimum."""

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".pgm", ".ppm", ".pbm")
"""Files taken as images: by folder scans (``create_lmdb``), ``tools/infer.py --image`` and ``--calibration``."""


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` has a common image extension (``IMAGE_EXTENSIONS``)."""
    return os.fspath(path).lower().endswith(IMAGE_EXTENSIONS)


def _to_uint8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        return (img // 257).astype(np.uint8)
    if img.dtype == np.bool_:
        return img.astype(np.uint8) * 255
    if np.issubdtype(img.dtype, np.floating):
        finite = np.nan_to_num(img.astype(np.float32))
        scale = 255.0 if finite.size and finite.max() <= 1.0 else 1.0
        return np.clip(finite * scale + 0.5, 0, 255).astype(np.uint8)
    if np.issubdtype(img.dtype, np.integer):
        return np.clip(img, 0, 255).astype(np.uint8)
    raise ValueError(f"unsupported image dtype {img.dtype}")


def _convert_channels(img: np.ndarray, channels: int, *, bgr: bool) -> np.ndarray:
    """(H, W) | (H, W, 1|3|4) uint8 -> (H, W) gray or (H, W, 3) RGB; alpha composited over white."""
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3 and img.shape[2] == 4:
        alpha = img[:, :, 3:4].astype(np.uint16)
        img = ((img[:, :, :3] * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)
    if img.ndim == 2:
        return img if channels == 1 else cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"unsupported image shape {img.shape}")
    if channels == 1:
        return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY if bgr else cv2.COLOR_RGB2GRAY)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if bgr else np.ascontiguousarray(img)


def _decode_bytes(buf: bytes | memoryview) -> tuple[np.ndarray | None, bool]:
    """Decode with OpenCV (BGR), falling back to Pillow (RGB) for formats OpenCV lacks."""
    arr = np.frombuffer(buf, dtype=np.uint8)
    img = cv2.imdecode(arr, cv2.IMREAD_UNCHANGED) if arr.size else None
    if img is not None:
        return img, True
    if not arr.size:
        return None, False
    try:
        import io

        from PIL import Image

        with Image.open(io.BytesIO(bytes(buf))) as pil:
            pil = pil.convert("RGBA" if "A" in pil.getbands() else "RGB")
            return np.asarray(pil), False
    except Exception:  # any Pillow failure means "not an image"
        return None, False


def decode_image(data: bytes | memoryview | str | os.PathLike | np.ndarray, channels: int = 1) -> np.ndarray:
    """Decode to uint8 ``(H, W)`` (channels=1) or ``(H, W, 3)`` RGB (channels=3).

    Accepts encoded bytes, a file path, or an array (gray, RGB or RGBA in that order; uint8,
    uint16, bool or float in [0, 1]). Alpha is composited over white; 16-bit is scaled to 8-bit.
    Raises ``ValueError("<what>: not a decodable image")`` for bad, empty or zero-size input and
    ``ValueError("<path>: no such file")`` for a missing path.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if isinstance(data, np.ndarray):
        what, img, bgr = "array", data, False
    elif isinstance(data, (bytes, bytearray, memoryview)):
        what = "bytes"
        img, bgr = _decode_bytes(data)
    elif isinstance(data, (str, os.PathLike)):
        what = os.fspath(data)
        try:
            buf = Path(what).read_bytes()
        except FileNotFoundError:
            raise ValueError(f"{what}: no such file") from None
        except (IsADirectoryError, PermissionError, OSError) as e:
            raise ValueError(f"{what}: cannot read: {e.strerror or e}") from None
        img, bgr = _decode_bytes(buf)
    else:
        raise TypeError(f"cannot decode an image from {type(data).__name__}")
    if img is None or img.size == 0 or img.ndim not in (2, 3) or min(img.shape[:2]) == 0:
        raise ValueError(f"{what}: not a decodable image")
    try:
        return _convert_channels(_to_uint8(img), channels, bgr=bgr)
    except (ValueError, cv2.error) as e:
        raise ValueError(f"{what}: not a decodable image ({e})") from None


def image_size(buf: bytes | memoryview) -> tuple[int, int] | None:
    """(width, height) from an encoded image's header without decoding pixels; None if unreadable."""
    head = bytes(buf[:24])
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        w, h = struct.unpack(">II", head[16:24])
        return (w, h) if w > 0 and h > 0 else None
    try:
        import io

        from PIL import Image

        with Image.open(io.BytesIO(bytes(buf))) as img:  # lazy: reads the header only
            w, h = img.size
    except Exception:  # Pillow raises many types for garbage; all mean "corrupt"
        return None
    return (w, h) if w > 0 and h > 0 else None


def resized_width(
    width: int, height_in: int, height: int, *, max_width: int | None = None, min_width: int = DEFAULT_MIN_WIDTH,
    width_scale: float = 1.0,
) -> int:
    """Width after ``resize_to_height`` of a ``height_in x width`` image (for filtering and bucketing)."""
    w = max(1, round(width * height / height_in * width_scale))
    if max_width is not None:
        w = min(w, max_width)
    return max(w, min_width)


def resize_to_height(
    img: np.ndarray, height: int, *, max_width: int | None = None, min_width: int = DEFAULT_MIN_WIDTH,
    width_scale: float = 1.0,
) -> np.ndarray:
    """Resize keeping the aspect ratio so the height is ``height``: (H, W[, 3]) -> (height, w[, 3]).

    ``width_scale`` stretches the width on top of that (1.5: half as many pixels again per
    glyph), which gives a model of fixed horizontal stride more output frames per character:
    narrow letters ("ll", "il", "tt" in a sans font) need a blank frame between repeats that a
    32 px line at stride 4 barely has. A model trained with a scale must be read with the same one.
    Wider than ``max_width`` -> squeezed horizontally to ``max_width`` (the text stays whole).
    Narrower than ``min_width`` -> padded on the right by repeating the last column (glyphs keep
    their shape). INTER_AREA when shrinking, INTER_CUBIC when enlarging.
    """
    h, w = img.shape[:2]
    scaled = max(1, round(w * height / h * width_scale))
    target = min(scaled, max_width) if max_width is not None else scaled
    if (h, w) != (height, target):
        shrink = height < h or target < w
        img = cv2.resize(img, (target, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    if target < min_width:
        pad = [(0, 0), (0, min_width - target)] + [(0, 0)] * (img.ndim - 2)
        img = np.pad(img, pad, mode="edge")
    return img


def image_to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 (H, W) or (H, W, C) -> float32 (C, H, W) in [-1, 1]."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(img))
    t = t.unsqueeze(0) if t.dim() == 2 else t.permute(2, 0, 1)  # (C, H, W)
    return t.float().div_(127.5).sub_(1.0).contiguous()


def pad_batch(images: list[torch.Tensor], *, width: int | None = None) -> torch.Tensor:
    """[(C, H, w_i)] -> (N, C, H, W) with W = max(w_i) (or ``width``), right-padded by repeating the last column."""
    import torch

    if not images:
        raise ValueError("pad_batch needs at least one image")
    c, h = images[0].shape[:2]
    widths = [int(im.shape[2]) for im in images]
    total = max(widths) if width is None else width
    if total < max(widths):
        raise ValueError(f"width {total} is smaller than the widest image ({max(widths)})")
    out = torch.empty(len(images), c, h, total, dtype=images[0].dtype)
    for i, (im, w) in enumerate(zip(images, widths)):
        out[i, :, :, :w] = im
        if w < total:
            out[i, :, :, w:] = im[:, :, w - 1 : w]  # (C, H, 1) broadcast over the padding
    return out


# uint8 value -> float32 in [-1, 1], the exact values image_to_tensor computes (x / 127.5 - 1)
_UINT8_TO_UNIT = np.arange(256, dtype=np.float32) / np.float32(127.5) - np.float32(1.0)


def images_to_batch(images: list[np.ndarray], *, width: int | None = None) -> np.ndarray:
    """Numpy twin of ``pad_batch([image_to_tensor(im) ...])``, without torch.

    [uint8 (H, w_i) or (H, w_i, C)] -> float32 (N, C, H, W) in [-1, 1], W = max(w_i) (or ``width``),
    right-padded by repeating the last column.
    """
    if not images:
        raise ValueError("images_to_batch needs at least one image")
    first = images[0]
    h, c = first.shape[0], 1 if first.ndim == 2 else first.shape[2]
    widths = [int(im.shape[1]) for im in images]
    total = max(widths) if width is None else width
    if total < max(widths):
        raise ValueError(f"width {total} is smaller than the widest image ({max(widths)})")
    out = np.empty((len(images), c, h, total), dtype=np.float32)
    for i, (im, w) in enumerate(zip(images, widths)):
        if im.dtype != np.uint8 or im.shape[0] != h or (1 if im.ndim == 2 else im.shape[2]) != c:
            raise ValueError(f"image {i}: expected uint8 of height {h} with {c} channel(s), got {im.dtype} {im.shape}")
        chw = im[None] if im.ndim == 2 else im.transpose(2, 0, 1)  # (C, H, w)
        out[i, :, :, :w] = _UINT8_TO_UNIT[chw]
        if w < total:
            out[i, :, :, w:] = out[i, :, :, w - 1 : w]  # (C, H, 1) broadcast over the padding
    return out
