"""Inference on PIL images and strings: unit-length numpy vectors for a vector database."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

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
    """A loaded composition model: `encode_image` for the gallery, `compose` for queries."""

    def __init__(self, model: ComposeModel):
        self.model = model.eval()
        self.config = model.config
        self.transform = image_transform(model.config)

    @property
    def dimension(self) -> int:
        return self.config.embed_dim

    def _pixels(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return torch.stack([self.transform(image.convert("RGB")) for image in images]).to(self.model.device)

    def encode_image(self, images: Sequence[Image.Image]) -> np.ndarray:
        with torch.inference_mode():
            return _unit(self.model.target_features(self._pixels(images)))

    def compose(self, images: Sequence[Image.Image], texts: Sequence[str]) -> np.ndarray:
        if len(images) != len(texts):
            raise ValueError("one modification text per image")
        with torch.inference_mode():
            return _unit(self.model.compose_img_text(self._pixels(images), list(texts)))

    def compose_features(self, img_features: torch.Tensor, text_features: torch.Tensor) -> np.ndarray:
        """Compose features made elsewhere (image features as `extract_img_feature` gives them)."""
        with torch.inference_mode():
            return _unit(self.model.compose_img_text_features(img_features, text_features))


def _unit(features: torch.Tensor) -> np.ndarray:
    return F.normalize(features.float(), dim=-1).cpu().numpy()


def load_tirg(path: str | Path, device: str | torch.device = "cpu") -> TirgComposer:
    return TirgComposer(load_model(path, device))
