"""Search queries encoded in batches: per encoder, one MicroBatcher for texts, one for images and one
for composed (image, text) pairs. `max_batch` 1 turns batching off (each query its own forward pass)."""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from webserver.encoders.base import Encoder
from webserver.encoders.batching import MicroBatcher


class QueryBatching:
    def __init__(self, *, window_s: float, max_batch: int):
        self.window_s = window_s
        self.max_batch = max_batch
        self._batchers: dict[tuple[int, str], MicroBatcher] = {}
        self._lock = threading.Lock()

    def text(self, encoder: Encoder, text: str) -> np.ndarray:
        return self._call(encoder, "text", encoder.encode_texts, text)

    def image(self, encoder: Encoder, image: Image.Image) -> np.ndarray:
        return self._call(encoder, "image", encoder.encode_images, image)

    def composed(self, encoder: Encoder, image: Image.Image, text: str, composer: str | None = None) -> np.ndarray:
        """`composer`: as `encoder.composer_for` resolved it; queries with different ones never share a batch."""
        def compose(pairs: list[tuple[Image.Image, str]]) -> np.ndarray:
            return encoder.compose([image for image, _ in pairs], [text for _, text in pairs], composer)

        return self._call(encoder, f"composed-{composer}" if composer else "composed", compose, (image, text))

    def batch_sizes(self) -> dict[str, list[int]]:
        """Recent batch sizes per kind of query (tests, benchmarks)."""
        with self._lock:
            return {kind: list(batcher.batch_sizes) for (_, kind), batcher in self._batchers.items()}

    def close(self) -> None:
        with self._lock:
            batchers, self._batchers = list(self._batchers.values()), {}
        for batcher in batchers:
            batcher.close()

    def _call(self, encoder: Encoder, kind: str, run_batch: Callable[[list[Any]], np.ndarray], item: Any) -> np.ndarray:
        if self.max_batch <= 1:
            return run_batch([item])[0]
        key = (id(encoder), kind)
        with self._lock:
            batcher = self._batchers.get(key)
            if batcher is None:
                batcher = self._batchers[key] = MicroBatcher(run_batch, window_s=self.window_s,
                                                             max_batch=self.max_batch, name=f"batch-{kind}")
        return batcher(item)
