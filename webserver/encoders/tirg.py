"""The TIRG composer as a server encoder: gallery images -> vectors, (image, modification text) -> query.

Wraps `tirg.inference` (the library knows nothing of the server). The id a collection records is the
model's weights fingerprint, so a run's checkpoint.pt and its exported tirg.pt are the same encoder.
"""
from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from webserver.encoders.base import TIRG, choose_precision, pick_device, unanswered, unit_rows
from webserver.encoders.onnx_towers import OnnxImageFeatures, built_or_torch, cache_key, choose_runtime
from webserver.errors import EncoderLoadError, InvalidInput


class TirgEncoder:
    kind = TIRG
    modes = frozenset({"image", "composed"})

    def __init__(self, checkpoint: str | Path, *, device: str = "auto", batch_size: int = 64,
                 precision: str = "fp32", cpu_class: str | None = None, runtime: str = "torch",
                 onnx_cache_dir: Path | None = None):
        """`runtime`: torch, onnx or auto (onnx_towers.choose_runtime): the image encoder run by ONNX
        Runtime, the text encoder (an LSTM over a handful of words) and the composition by torch."""
        from tirg.checkpoint import weights_fingerprint
        from tirg.inference import load_tirg

        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise EncoderLoadError(
                f"TIRG_CHECKPOINT={str(checkpoint)!r}: no such file. Train and export one "
                "(python -m tirg ... --export DIR, see README 'TIRG'), or unset TIRG_CHECKPOINT.")
        torch_device = pick_device(device)
        self.precision = choose_precision("TIRG_PRECISION", precision, torch_device, cpu_class)
        try:
            self.composer = load_tirg(path, torch_device, self.precision.precision)
        except Exception as exc:  # torch.load raises pickle, zip, key and shape errors alike
            raise EncoderLoadError(f"TIRG_CHECKPOINT={str(checkpoint)!r} could not be loaded: {exc}") from None
        self.batch_size = batch_size
        self.dimension = self.composer.dimension
        self.encoder_id = f"{TIRG}/{self.composer.config.model}/weights-{weights_fingerprint(self.composer.model)}"
        self._lock = threading.Lock()  # one forward pass at a time; torch already uses every core
        self.onnx = self._onnx_features(runtime, onnx_cache_dir)

    @property
    def runtime(self) -> str:
        return "torch" if self.onnx is None else "onnxruntime"

    def _onnx_features(self, requested: str, cache_dir: Path | None) -> OnnxImageFeatures | None:
        runtime = choose_runtime("TIRG_RUNTIME", requested, self.precision.precision, self.composer.model.device)
        return built_or_torch("TIRG_RUNTIME", requested, runtime, lambda cache: OnnxImageFeatures(
            self.composer.model, cache_dir=cache, key=cache_key(self.encoder_id)), cache_dir)

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        batches = [images[i:i + self.batch_size] for i in range(0, len(images), self.batch_size)]
        parts = [self.encode_pixels(self.preprocess_images(batch)) for batch in batches]
        return np.concatenate(parts) if parts else np.zeros((0, self.dimension), np.float32)

    def preprocess_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return self.composer.preprocess(images)

    def encode_pixels(self, pixels: torch.Tensor) -> np.ndarray:
        parts = []
        for start in range(0, len(pixels), self.batch_size):
            batch = pixels[start:start + self.batch_size]
            with self._lock:
                parts.append(self.composer.encode_pixels(batch) if self.onnx is None
                             else unit_rows(self.onnx.gallery(batch)))
        return np.concatenate(parts) if parts else np.zeros((0, self.dimension), np.float32)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        raise unanswered(self, "text")

    composing = "its TIRG model"
    composes_vectors = False  # TIRG composes its image encoder's features, not the stored vectors

    def compose_vectors(self, image_vectors: np.ndarray, text_vectors: np.ndarray,
                        composer: str | None = None) -> np.ndarray:
        raise InvalidInput("A TIRG collection composes from the query image itself, not from stored vectors.")

    def composer_for(self, requested: str | None) -> str | None:
        if requested is not None:
            raise InvalidInput(f"composer={requested!r}: a TIRG collection composes with its own TIRG model; "
                               "composer applies to CLIP collections.")
        return None

    def compose(self, images: Sequence[Image.Image], texts: Sequence[str], composer: str | None = None) -> np.ndarray:
        self.composer_for(composer)
        with self._lock:
            if self.onnx is None:
                return self.composer.compose(images, texts).astype(np.float32)
            features = torch.from_numpy(self.onnx.query(self.composer.preprocess(images)))
            return self.composer.compose_image_features(features, texts).astype(np.float32)
