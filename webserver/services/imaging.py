"""Validate and decode uploaded image bytes before anything is stored."""
from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from webserver.errors import InvalidInput, PayloadTooLarge, UnsupportedMedia


@dataclass(frozen=True)
class DecodedImage:
    data: bytes
    sha256: str
    image: Image.Image
    format: str
    width: int
    height: int


def decode_image(data: bytes, *, name: str, max_bytes: int, max_pixels: int) -> DecodedImage:
    """Raises a 4xx-class domain error naming `name` for empty, oversized, non-image or corrupt input."""
    if not data:
        raise InvalidInput(f"{name}: the file is empty.")
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"{name}: {len(data)} bytes is over the {max_bytes}-byte limit.")
    image = _open(data, name)
    width, height = image.size
    if width * height > max_pixels:
        raise PayloadTooLarge(f"{name}: {width}x{height} pixels is over the {max_pixels}-pixel limit.")
    try:
        image.load()
        image_format = image.format or ""
        upright = ImageOps.exif_transpose(image)  # a phone's portrait photo is stored sideways + a tag
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidInput(f"{name}: the image is truncated or corrupt ({exc}).") from None
    width, height = upright.size
    return DecodedImage(data, hashlib.sha256(data).hexdigest(), upright, image_format, width, height)


def open_stored(data: bytes) -> Image.Image:
    """A stored image as uploads are encoded: upright by its EXIF orientation."""
    return ImageOps.exif_transpose(Image.open(io.BytesIO(data)))


def _open(data: bytes, name: str) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PayloadTooLarge(f"{name}: the image has too many pixels.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise UnsupportedMedia(f"{name}: not an image format we can read (JPEG, PNG, GIF, WebP, BMP, TIFF).") from None
