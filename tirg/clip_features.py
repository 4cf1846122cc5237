"""Frozen CLIP features of a split's images and texts (open_clip), for training and scoring composers over
the CLIP space. Unit vectors, as a CLIP collection stores them."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from PIL import Image

from tirg.combiner import clip_weights_id


@dataclass
class ClipModel:
    name: str
    weights_id: str  # as CombinerConfig.clip_weights names them
    model: Any  # an open_clip CLIP (encode_image, encode_text)
    preprocess: Callable
    tokenizer: Callable


def load_clip(name: str, pretrained: str, config_file: str | Path | None = None,
              device: str | torch.device = "cpu") -> ClipModel:
    """`config_file`: an architecture JSON that open_clip does not ship (registered before loading)."""
    if config_file:
        open_clip.add_model_config(Path(config_file))
    path = Path(pretrained).expanduser()
    model, _, preprocess = open_clip.create_model_and_transforms(
        name, pretrained=str(path) if path.is_file() else pretrained, device=device)
    return ClipModel(name, clip_weights_id(pretrained), model.eval(), preprocess, open_clip.get_tokenizer(name))


@torch.no_grad()  # not inference_mode: training takes these tensors into autograd
def image_features(clip: ClipModel, paths: Sequence[Path], batch_size: int = 256,
                   progress: Callable[[int], object] | None = None) -> torch.Tensor:
    device = next(clip.model.parameters()).device
    parts = []
    for start in range(0, len(paths), batch_size):
        pixels = torch.stack([clip.preprocess(_rgb(path)) for path in paths[start:start + batch_size]])
        parts.append(clip.model.encode_image(pixels.to(device)).float().cpu())
        if progress:
            progress(len(pixels))
    return F.normalize(torch.cat(parts), dim=-1) if parts else torch.zeros(0, 0)


@torch.no_grad()  # not inference_mode: training takes these tensors into autograd
def text_features(clip: ClipModel, texts: Sequence[str], batch_size: int = 512) -> torch.Tensor:
    device = next(clip.model.parameters()).device
    parts = [clip.model.encode_text(clip.tokenizer(list(texts[start:start + batch_size])).to(device)).float().cpu()
             for start in range(0, len(texts), batch_size)]
    return F.normalize(torch.cat(parts), dim=-1)


def _rgb(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


@dataclass
class SplitFeatures:
    """One split in features: its gallery images, the distinct texts, and each query as indexes."""

    images: torch.Tensor  # [N, d]
    texts: torch.Tensor  # [T, d]
    labels: np.ndarray  # [N]: images of one label count as the same target
    sources: np.ndarray  # [Q] gallery index of each query's image
    text_index: np.ndarray  # [Q] row of `texts`
    targets: np.ndarray  # [Q] gallery index of each query's target

    @property
    def target_labels(self) -> np.ndarray:
        return self.labels[self.targets]


def split_features(clip: ClipModel, dataset, progress: Callable[[int], object] | None = None,
                   queries: Sequence | None = None) -> SplitFeatures:
    """Features of a tirg data set split (CSSDataset or TripletDataset: image_path, labels, queries): its
    whole gallery, and its queries (or `queries`, a sample of them)."""
    queries = dataset.queries if queries is None else queries
    distinct = sorted({q.text for q in queries})
    row = {text: i for i, text in enumerate(distinct)}
    paths = [dataset.image_path(i) for i in range(len(dataset))]
    return SplitFeatures(
        images=image_features(clip, paths, progress=progress), texts=text_features(clip, distinct),
        labels=np.asarray(dataset.labels), sources=np.array([q.source for q in queries]),
        text_index=np.array([row[q.text] for q in queries]), targets=np.array([q.target for q in queries]))
