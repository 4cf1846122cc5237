"""Real images for benchmarks and tests: Fashion-MNIST (Debian's dataset-fashion-mnist) where installed,
drawn shapes otherwise. Here so that scripts never import tests/."""
from __future__ import annotations

import gzip
import io
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
LABELS = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]


def fashion_mnist(split: str = "test", root: Path = FASHION_MNIST) -> tuple[np.ndarray, np.ndarray] | None:
    """One whole split ("train": 60,000 images, "test": 10,000) as uint8 [N, 28, 28] and class indices
    into LABELS; None where the data set is not installed."""
    prefix = {"train": "train", "test": "t10k"}[split]
    images, labels = root / f"{prefix}-images-idx3-ubyte.gz", root / f"{prefix}-labels-idx1-ubyte.gz"
    if not images.exists():
        return None
    with gzip.open(images) as handle:
        pixels = np.frombuffer(handle.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(labels) as handle:
        classes = np.frombuffer(handle.read(), np.uint8, offset=8)
    return pixels, classes


@lru_cache(maxsize=1)
def _fashion_mnist(limit: int = 2000) -> tuple[np.ndarray, np.ndarray] | None:
    data = fashion_mnist("test")
    return None if data is None else (data[0][:limit], data[1][:limit])


def sample_images(count: int, start: int = 0) -> list[tuple[Image.Image, str]]:
    """`count` distinct (image, label) pairs; drawn shapes stand in where Fashion-MNIST is absent."""
    data = _fashion_mnist()
    if data is not None and start + count <= len(data[0]):
        pixels, classes = data
        return [(Image.fromarray(pixels[i]).convert("RGB"), LABELS[classes[i]])
                for i in range(start, start + count)]
    result = []
    for i in range(start, start + count):
        image = Image.new("RGB", (32, 32), (i * 37 % 256, i * 91 % 256, i * 53 % 256))
        ImageDraw.Draw(image).rectangle([i % 16, i % 13, 16 + i % 16, 16 + i % 11], fill=(255, 255, 255))
        result.append((image, LABELS[i % 10]))
    return result


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def sample_pngs(count: int, start: int = 0) -> list[tuple[bytes, str]]:
    return [(png_bytes(image), label) for image, label in sample_images(count, start)]

