"""TIRG and the trained CLIP combiner fused in one vector (FUSED_TIRG_WEIGHT).

The two composers make different mistakes (TIRG sees a scene at 64 px through its own ResNet, the combiner
reads CLIP's vectors), and ranking by `w * cos(TIRG) + (1 - w) * cos(combiner)` beats each alone: on the
generated scenes' test split R@1 92.5 at the weight chosen on training queries, against 89.9 and 82.5
(docs/results.md, "Fusing TIRG and the combiner"). A vector here is `[sqrt(w) * tirg; sqrt(1 - w) * clip]`,
both halves unit length, so it is unit length too and the inner product of two such vectors is exactly
that weighted sum: one collection, one search, no re-ranking. Image and composed queries, as TIRG.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from webserver.encoders.base import FUSED, Encoder, unanswered
from webserver.encoders.clip_compose import TRAINED
from webserver.errors import EncoderLoadError, InvalidInput


class FusedEncoder:
    kind = FUSED
    modes = frozenset({"image", "composed"})
    composes_vectors = False  # its TIRG half composes from the query image itself

    def __init__(self, tirg: Encoder, clip: Any, tirg_weight: float):
        """`clip`: a ClipEncoder with a trained combiner loaded (CLIP_COMBINER_CHECKPOINT)."""
        if not 0 < tirg_weight < 1:
            raise EncoderLoadError(f"FUSED_TIRG_WEIGHT={tirg_weight:g}: a weight between 0 and 1 (both excluded).")
        if clip.composers.combiner is None:
            raise EncoderLoadError("FUSED_TIRG_WEIGHT needs CLIP_COMBINER_CHECKPOINT: the fusion's CLIP half is "
                                   "the trained combiner.")
        self.tirg, self.clip = tirg, clip
        self.scales = (float(np.sqrt(tirg_weight)), float(np.sqrt(1 - tirg_weight)))
        self.dimension = tirg.dimension + clip.dimension
        self.encoder_id = (f"{FUSED}/w{tirg_weight:g}/{tirg.encoder_id}+{clip.encoder_id}"
                           f"+combiner-{clip.composers.combiner_id}")
        self.precision = tirg.precision
        self.composing = f"TIRG (weight {tirg_weight:g}) fused with the trained combiner"

    @property
    def runtime(self) -> str:
        runtimes = dict.fromkeys([self.tirg.runtime, self.clip.runtime])
        return "+".join(runtimes)

    def _joined(self, tirg_vectors: np.ndarray, clip_vectors: np.ndarray) -> np.ndarray:
        return np.concatenate([self.scales[0] * tirg_vectors, self.scales[1] * clip_vectors], axis=1,
                              dtype=np.float32)

    def preprocess_images(self, images: Sequence[Image.Image]) -> tuple[Any, Any]:
        return self.tirg.preprocess_images(images), self.clip.preprocess_images(images)

    def encode_pixels(self, pixels: tuple[Any, Any]) -> np.ndarray:
        return self._joined(self.tirg.encode_pixels(pixels[0]), self.clip.encode_pixels(pixels[1]))

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self._joined(self.tirg.encode_images(images), self.clip.encode_images(images))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        raise unanswered(self, "text")

    def composer_for(self, requested: str | None) -> str | None:
        if requested is not None:
            raise InvalidInput(f"composer={requested!r}: a fused collection composes with TIRG and the trained "
                               "combiner together; composer applies to CLIP collections.")
        return None

    def compose(self, images: Sequence[Image.Image], texts: Sequence[str], composer: str | None = None) -> np.ndarray:
        self.composer_for(composer)
        return self._joined(self.tirg.compose(images, texts), self.clip.compose(images, texts, TRAINED))

    def compose_vectors(self, image_vectors: np.ndarray, text_vectors: np.ndarray,
                        composer: str | None = None) -> np.ndarray:
        raise InvalidInput("A fused collection composes from the query image itself, not from stored vectors.")
