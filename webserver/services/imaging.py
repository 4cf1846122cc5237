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


# Images are decoded to at most this many pixels a side: the encoders look at 224 px, and a 6000x6000
# PNG decoded in full held 108 MB per file until it was encoded (20 of them: +2.8 GB).
ENCODE_SIDE = 1024
_SIDEWAYS = {5, 6, 7, 8}  # EXIF orientations that swap width and height


def checked_size(data: bytes, *, name: str, max_bytes: int, max_pixels: int) -> tuple[int, int]:
    """(width, height) as stored, from the header alone (nothing decoded: a PNG's EXIF is not read, it can
    follow the pixels); raises a 4xx-class
    domain error naming `name` for empty, oversized or non-image input."""
    if not data:
        raise InvalidInput(f"{name}: the file is empty.")
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"{name}: {len(data)} bytes is over the {max_bytes}-byte limit.")
    image = _open(data, name)
    width, height = image.size
    if width * height > max_pixels:
        raise PayloadTooLarge(f"{name}: {width}x{height} pixels is over the {max_pixels}-pixel limit.")
    return width, height


def decode_image(data: bytes, *, name: str, max_bytes: int, max_pixels: int) -> DecodedImage:
    """Raises a 4xx-class domain error naming `name` for empty, oversized, non-image or corrupt input."""
    width, height = checked_size(data, name=name, max_bytes=max_bytes, max_pixels=max_pixels)
    image = _open(data, name)
    image_format = image.format or ""
    try:
        if image.getexif().get(0x0112) in _SIDEWAYS:  # a PNG's EXIF is read by loading it: once, here
            width, height = height, width
        upright = _for_encoding(image)
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidInput(f"{name}: the image is truncated or corrupt ({exc}).") from None
    return DecodedImage(data, hashlib.sha256(data).hexdigest(), upright, image_format, width, height)


def open_stored(data: bytes) -> Image.Image:
    """A stored image as uploads are encoded (the same vector comes out)."""
    return _for_encoding(Image.open(io.BytesIO(data)))


def _for_encoding(image: Image.Image) -> Image.Image:
    """At most ENCODE_SIDE a side (JPEGs decode at a reduced scale, others are reduced in place right
    after decoding), then upright by the EXIF orientation (a phone's portrait photo is stored sideways
    plus a tag). No full-size copy is ever made."""
    image.draft(None, (ENCODE_SIDE, ENCODE_SIDE))
    image.load()
    if max(image.size) > ENCODE_SIDE:
        image.thumbnail((ENCODE_SIDE, ENCODE_SIDE), Image.Resampling.BICUBIC)
    ImageOps.exif_transpose(image, in_place=True)
    return image


def _open(data: bytes, name: str) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PayloadTooLarge(f"{name}: the image has too many pixels.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise UnsupportedMedia(f"{name}: not an image format we can read (JPEG, PNG, GIF, WebP, BMP, TIFF).") from None
