"""What the services need from an encoder: an id recorded with every collection, a dimension, and
batched, L2-normalized encoders. Blocking; callers run it off the event loop."""
from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np
from PIL import Image


class ImageTextEncoder(Protocol):
    encoder_id: str
    dimension: int

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray: ...

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray: ...


def pick_device(requested: str) -> str:
    """Chosen once, at load: 'auto' is CUDA where torch sees one, CPU otherwise."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        from webserver.errors import EncoderLoadError

        raise EncoderLoadError("DEVICE=cuda but torch sees no CUDA device; set DEVICE=cpu or auto.")
    return requested
