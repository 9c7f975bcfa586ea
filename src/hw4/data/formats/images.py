"""Images as a user has them (PNG/JPEG bytes of any size) <-> the pixels the networks take.

How torchvision's ImageNet-trained backbones take their input: RGB pixels in [0, 1],
normalised per channel by ImageNet's statistics (the transfer stage's loaders and the COCO
feature extraction both feed such backbones).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageDecodeError(ValueError):
    """Bytes that are no image PIL can read."""


def decode(data: bytes, mode: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """Encoded image bytes -> uint8 pixels in `mode` ("L": (H, W); "RGB": (H, W, 3)), resized
    to `size` (width, height) when it differs: bilinear with PIL's antialiasing, the way
    MNIST-family and ImageNet-style images are usually scaled."""
    if not isinstance(data, (bytes, bytearray)) or not data:
        raise ImageDecodeError(f"expected the bytes of a PNG or JPEG file, got {_describe(data)}")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image = image.convert(mode)
            if size is not None and image.size != size:
                image = image.resize(size, Image.Resampling.BILINEAR)
            return np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise ImageDecodeError(f"{len(data)} bytes that are no readable image ({type(e).__name__}: {e})") from None


def encode_png(pixels: np.ndarray) -> bytes:
    """uint8 pixels (H, W) or (H, W, 3) -> PNG bytes (lossless: `decode` gives them back)."""
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3):
        raise ValueError(f"expected uint8 pixels (H, W) or (H, W, 3), got {pixels.dtype} {pixels.shape}")
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _describe(value: object) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "0 bytes"
    return f"{type(value).__name__} {str(value)[:40]!r}"
