"""What the services need from an encoder: an id recorded with every collection, a dimension, the query
modes its collections answer, and batched, L2-normalized encoders. Blocking; callers run it off the
event loop.

Two kinds exist: CLIP (text and images in one space: text, image and composed queries, the last by a
composer over that space) and TIRG (an image encoder plus a composer: image and composed queries).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from PIL import Image

from webserver.errors import EncoderLoadError, InvalidInput

if TYPE_CHECKING:
    import torch

    from tirg.hardware import PrecisionChoice

log = logging.getLogger(__name__)

CLIP, TIRG, FUSED = "clip", "tirg", "fused"
KINDS = (CLIP, TIRG, FUSED)


class Encoder(Protocol):
    kind: str
    encoder_id: str
    dimension: int
    modes: frozenset[str]  # the query modes a collection of this encoder answers
    precision: PrecisionChoice  # what it computes in, and on which hardware (tirg.hardware decides)

    @property
    def composing(self) -> str:
        """What composes its composed queries, in words (readyz)."""
        ...

    @property
    def runtime(self) -> str:
        """What runs the model: torch or onnxruntime."""
        ...

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray: ...

    def preprocess_images(self, images: Sequence[Image.Image]) -> Any:
        """The model's input for these images, made without the model (reader threads may call it)."""
        ...

    def encode_pixels(self, pixels: Any) -> np.ndarray:
        """Vectors of what `preprocess_images` made: `encode_images` in two steps."""
        ...

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Text queries; raises InvalidInput where "text" is not in `modes`."""
        ...

    def composer_for(self, requested: str | None) -> str | None:
        """The composer a composed query runs with (CLIP: sum or trained; TIRG: its own, None); InvalidInput
        for one this encoder lacks."""
        ...

    def compose(self, images: Sequence[Image.Image], texts: Sequence[str], composer: str | None = None) -> np.ndarray:
        """Image + modification text queries; raises InvalidInput where "composed" is not in `modes`."""
        ...

    @property
    def composes_vectors(self) -> bool:
        """Whether `compose_vectors` works: composing from the unit vectors a collection stores (CLIP), so
        an indexed query image needs no encoding."""
        ...

    def compose_vectors(self, image_vectors: np.ndarray, text_vectors: np.ndarray,
                        composer: str | None = None) -> np.ndarray:
        ...


def unit_rows(array: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, float32: what every encoder returns (and what a bf16 pass or another
    runtime is re-normalized to)."""
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return (array / np.maximum(norms, 1e-12)).astype(np.float32)


def unanswered(encoder: Encoder, mode: str) -> InvalidInput:
    return InvalidInput(f"A {encoder.kind} model does not answer {mode} queries; it answers "
                        f"{' and '.join(sorted(encoder.modes))} ones.")


def kind_of(encoder_id: str) -> str:
    """The kind of encoder that made a collection, from the id it recorded."""
    for kind in (TIRG, FUSED):
        if encoder_id.startswith(f"{kind}/"):
            return kind
    return CLIP


def pick_device(requested: str) -> torch.device:
    """Chosen once, at load (tirg.hardware decides for every caller): 'auto' is CUDA where torch sees
    one, CPU otherwise."""
    from tirg.hardware import pick_device as pick

    try:
        return pick(requested)
    except ValueError:
        raise EncoderLoadError("DEVICE=cuda but torch sees no CUDA device; set DEVICE=cpu or auto.") from None


def choose_precision(setting: str, requested: str, device: torch.device, cpu_class: str | None) -> PrecisionChoice:
    """The precision an encoder runs at (tirg.hardware decides); an explicit bf16 that would be emulated
    runs fp32 and logs a warning naming the cost, never silently 10x slower."""
    from tirg.hardware import choose_precision as choose

    try:
        choice = choose(requested, device, cpu_class)
    except ValueError as exc:
        raise EncoderLoadError(f"{setting} / CPU_CLASS: {exc}") from None
    if choice.fell_back:
        log.warning("%s=bf16 ignored: %s. Set %s=auto (or fp32) to silence this.", setting, choice.reason, setting)
    else:
        log.info("%s=%s: running %s (%s)", setting, requested, choice.precision, choice.reason)
    return choice
