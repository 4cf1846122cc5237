"""The composition models of Vo et al., "Composing Text and Image for Image Retrieval" (CVPR 2019).

A small class tree with template methods, as in the reference code: `extract_img_feature`,
`extract_text_feature`, `compose_img_text`, and `compose_img_text_features` (the hook for composing
features made elsewhere). Models never pick a device; the caller moves them.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from tirg.image import create_image_encoder
from tirg.text import TextEncoder, Vocabulary, pad_batch

MODEL_NAMES = ("image_only", "text_only", "concat", "tirg", "tirg_lastconv")


@dataclass
class TirgConfig:
    model: str = "tirg"
    backbone: str = "resnet18"
    embed_dim: int = 512
    word_dim: int = 512
    lstm_dim: int = 512
    image_size: int = 64
    normalize_scale: float = 4.0
    image_mean: Sequence[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    image_std: Sequence[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])

    def to_dict(self) -> dict:
        data = asdict(self)
        data["image_mean"], data["image_std"] = list(self.image_mean), list(self.image_std)
        return data


class NormalizationLayer(nn.Module):
    """x / ||x|| * s with a learnable scale s (init 4.0), as in the paper."""

    def __init__(self, scale: float = 4.0, learn_scale: bool = True):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(scale)), requires_grad=learn_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * F.normalize(x, dim=-1)


class ComposeModel(nn.Module):
    """Base: image and text encoders, a normalization layer, and the template methods."""

    def __init__(self, config: TirgConfig, vocabulary: Vocabulary):
        super().__init__()
        self.config = config
        self.vocabulary = vocabulary
        self.image_encoder = create_image_encoder(config.backbone, config.embed_dim)
        self.text_encoder = TextEncoder(len(vocabulary), config.word_dim, config.lstm_dim, config.embed_dim)
        self.normalize = NormalizationLayer(config.normalize_scale)

    @property
    def device(self) -> torch.device:
        return self.normalize.scale.device

    def extract_img_feature(self, images: torch.Tensor) -> torch.Tensor:
        return self.image_encoder(images)

    def extract_text_feature(self, texts: Sequence[str]) -> torch.Tensor:
        ids, lengths = pad_batch([self.vocabulary.encode(t) for t in texts], self.device)
        return self.text_encoder(ids, lengths)

    def compose_img_text(self, images: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        return self.compose_img_text_features(self.extract_img_feature(images), self.extract_text_feature(texts))

    def compose_img_text_features(self, img_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def target_features(self, images: torch.Tensor) -> torch.Tensor:
        """What a composed query is compared with: the (pooled) feature of a gallery image."""
        return self.extract_img_feature(images)

    def query_and_target(self, query_images: torch.Tensor, texts: Sequence[str], target_images: torch.Tensor):
        """Normalized (composed query, target) features for a training batch."""
        return self.query_and_target_of_features(self.extract_img_feature(query_images), texts,
                                                 self.target_features(target_images))

    def query_and_target_of_features(self, query_features: torch.Tensor, texts: Sequence[str],
                                     target_features: torch.Tensor):
        """`query_and_target` from image features made elsewhere (a frozen image encoder's, computed once)."""
        return (self.normalize(self.compose_img_text_features(query_features, self.extract_text_feature(texts))),
                self.normalize(target_features))

    @property
    def composes_pooled_features(self) -> bool:
        """Whether a query's image feature is the gallery's pooled vector (False for tirg_lastconv, which
        composes the feature map)."""
        return True


class ImageOnly(ComposeModel):
    def compose_img_text_features(self, img_features, text_features):
        return img_features


class TextOnly(ComposeModel):
    def compose_img_text_features(self, img_features, text_features):
        return text_features


def _concat_mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm1d(in_dim), nn.ReLU(), nn.Linear(in_dim, hidden), nn.ReLU(),
                         nn.Dropout(0.1), nn.Linear(hidden, out_dim))


class Concat(ComposeModel):
    """Baseline: an MLP over [image; text].

    Departs from the reference (google/tirg `ConcatWithText`): the reference has a second BatchNorm1d
    after the first Linear (BN -> ReLU -> Linear -> BN -> ReLU -> Dropout -> Linear); this one has not.
    Kept as it is so that the baseline figures in docs/results.md stay reproducible."""

    def __init__(self, config, vocabulary):
        super().__init__(config, vocabulary)
        d = config.embed_dim
        self.composer = _concat_mlp(2 * d, 2 * d, d)

    def compose_img_text_features(self, img_features, text_features):
        return self.composer(torch.cat([img_features, text_features], dim=1))


class Tirg(ComposeModel):
    """Gated residual: f = a0 * sigmoid(gate([x; t])) * x + a1 * residual([x; t]), a = (1, 10)."""

    def __init__(self, config, vocabulary):
        super().__init__(config, vocabulary)
        d = config.embed_dim
        self.gate = nn.Sequential(nn.BatchNorm1d(2 * d), nn.ReLU(), nn.Linear(2 * d, d))
        self.residual = nn.Sequential(nn.BatchNorm1d(2 * d), nn.ReLU(), nn.Linear(2 * d, 2 * d), nn.ReLU(),
                                      nn.Linear(2 * d, d))
        self.a = nn.Parameter(torch.tensor([1.0, 10.0]))

    def compose_img_text_features(self, img_features, text_features):
        both = torch.cat([img_features, text_features], dim=1)
        return self.a[0] * torch.sigmoid(self.gate(both)) * img_features + self.a[1] * self.residual(both)


class TirgLastConv(ComposeModel):
    """TIRG applied to the last convolutional feature map, then pooled. `compose_img_text_features`
    takes that map ([B, C, h, w]) rather than a pooled vector.

    Departs from the reference (google/tirg `TIRGLastConv`), whose gate and residual are both
    BN -> conv3x3 -> ReLU -> conv3x3: here they keep the 1-D TIRG's shapes, a gate of BN -> ReLU -> one
    conv3x3 and a residual of BN -> ReLU -> conv3x3 -> ReLU -> conv3x3. Not trained for the results table."""

    def __init__(self, config, vocabulary):
        super().__init__(config, vocabulary)
        c, d = self.image_encoder.channels, config.embed_dim
        self.gate = nn.Sequential(nn.BatchNorm2d(c + d), nn.ReLU(), nn.Conv2d(c + d, c, 3, padding=1))
        self.residual = nn.Sequential(nn.BatchNorm2d(c + d), nn.ReLU(), nn.Conv2d(c + d, c + d, 3, padding=1),
                                      nn.ReLU(), nn.Conv2d(c + d, c, 3, padding=1))
        self.a = nn.Parameter(torch.tensor([1.0, 10.0]))

    @property
    def composes_pooled_features(self) -> bool:
        return False

    def extract_img_feature(self, images):
        return self.image_encoder.feature_map(images)

    def target_features(self, images):
        return self.image_encoder.pool(self.image_encoder.feature_map(images))

    def compose_img_text_features(self, img_features, text_features):
        text_map = text_features[:, :, None, None].expand(-1, -1, *img_features.shape[2:])
        both = torch.cat([img_features, text_map], dim=1)
        composed = self.a[0] * torch.sigmoid(self.gate(both)) * img_features + self.a[1] * self.residual(both)
        return self.image_encoder.pool(composed)


MODEL_CLASSES: dict[str, type[ComposeModel]] = {
    "image_only": ImageOnly, "text_only": TextOnly, "concat": Concat, "tirg": Tirg,
    "tirg_lastconv": TirgLastConv,
}


def create_model(config: TirgConfig, vocabulary: Vocabulary) -> ComposeModel:
    if config.model not in MODEL_CLASSES:
        raise ValueError(f"unknown model {config.model!r}; choose one of {list(MODEL_CLASSES)}")
    return MODEL_CLASSES[config.model](config, vocabulary)
