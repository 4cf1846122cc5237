"""What the services need from an encoder: an id recorded with every collection, a dimension, the query
modes its collections answer, and batched, L2-normalized encoders. Blocking; callers run it off the
event loop.

Two kinds exist: CLIP (text and images in one space: text and image queries) and TIRG (an image encoder
plus a composer: image queries and image + modification text queries).
"""
from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np
from PIL import Image

CLIP, TIRG = "clip", "tirg"
KINDS = (CLIP, TIRG)


class Encoder(Protocol):
    kind: str
    encoder_id: str
    dimension: int
    modes: frozenset[str]  # the query modes a collection of this encoder answers

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray: ...


class ImageTextEncoder(Encoder, Protocol):
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray: ...


class ComposingEncoder(Encoder, Protocol):
    def compose(self, images: Sequence[Image.Image], texts: Sequence[str]) -> np.ndarray: ...


def kind_of(encoder_id: str) -> str:
    """The kind of encoder that made a collection, from the id it recorded."""
    return TIRG if encoder_id.startswith(f"{TIRG}/") else CLIP


def pick_device(requested: str) -> str:
    """Chosen once, at load: 'auto' is CUDA where torch sees one, CPU otherwise."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        from webserver.errors import EncoderLoadError

        raise EncoderLoadError("DEVICE=cuda but torch sees no CUDA device; set DEVICE=cpu or auto.")
    return requested
