"""Inference on PIL images and strings: unit-length numpy vectors for a vector database."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from tirg.checkpoint import load_model
from tirg.models import ComposeModel, TirgConfig


def image_transform(config: TirgConfig):
    from torchvision import transforms

    return transforms.Compose([
        transforms.Resize((config.image_size, config.image_size)),
        transforms.ToTensor(),
        transforms.Normalize(config.image_mean, config.image_std),
    ])


class TirgComposer:
    """A loaded composition model: `encode_image` for the gallery, `compose` for queries.

    `precision` "bf16" runs the forward passes under bf16 autocast (weights stay fp32); the caller picks
    it with `tirg.hardware.choose_precision`."""

    def __init__(self, model: ComposeModel, precision: str = "fp32"):
        self.model = model.eval()
        self.config = model.config
        self.transform = image_transform(model.config)
        self.precision = precision

    @contextlib.contextmanager
    def _inference(self) -> Iterator[None]:
        with torch.inference_mode(), torch.autocast(self.model.device.type, dtype=torch.bfloat16,
                                                    enabled=self.precision == "bf16"):
            yield

    @property
    def dimension(self) -> int:
        return self.config.embed_dim

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """The model's input tensor, on the CPU: no model involved, so other threads may prepare it."""
        return torch.stack([self.transform(image.convert("RGB")) for image in images])

    def _pixels(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return self.preprocess(images).to(self.model.device)

    def encode_image(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.encode_pixels(self.preprocess(images))

    def encode_pixels(self, pixels: torch.Tensor) -> np.ndarray:
        """Gallery vectors of a batch that `preprocess` made."""
        with self._inference():
            return _unit(self.model.target_features(pixels.to(self.model.device)))

    def compose(self, images: Sequence[Image.Image], texts: Sequence[str]) -> np.ndarray:
        if len(images) != len(texts):
            raise ValueError("one modification text per image")
        with self._inference():
            return _unit(self.model.compose_img_text(self._pixels(images), list(texts)))

    def compose_image_features(self, img_features: torch.Tensor, texts: Sequence[str]) -> np.ndarray:
        """Compose image features computed elsewhere (as `extract_img_feature` gives them, e.g. by another
        runtime) with modification texts."""
        if len(img_features) != len(texts):
            raise ValueError("one modification text per image")
        with self._inference():
            return _unit(self.model.compose_img_text_features(img_features.to(self.model.device),
                                                              self.model.extract_text_feature(list(texts))))

    def compose_features(self, img_features: torch.Tensor, text_features: torch.Tensor) -> np.ndarray:
        """Compose features made elsewhere (image features as `extract_img_feature` gives them)."""
        with self._inference():
            return _unit(self.model.compose_img_text_features(img_features, text_features))


def _unit(features: torch.Tensor) -> np.ndarray:
    return F.normalize(features.float(), dim=-1).cpu().numpy()


def load_tirg(path: str | Path, device: str | torch.device = "cpu", precision: str = "fp32") -> TirgComposer:
    return TirgComposer(load_model(path, device), precision)
