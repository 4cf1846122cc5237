"""Training data for the demo's small CLIP: the generated scenes with their captions, and Fashion-MNIST
with captions made from its class names (several phrasings per class, the train split only).

Every item belongs to a group: items of one group answer each other's texts. A scene's group is its
caption (two scenes with the same caption are the same scene to a reader), a Fashion-MNIST image's group
is its class. The loss (`grouped_clip_loss`) spreads each row's target over its group, so 25 dresses in
one batch are not taught to be 24 wrong answers to "a dress".
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from _samples import LABELS, fashion_mnist
from PIL import Image

# What a shopper would type for each class (Fashion-MNIST's own names first); every phrasing is also
# used with each of PREFIXES.
FASHION_PHRASES: dict[str, tuple[str, ...]] = {
    "t-shirt": ("a t-shirt", "a t-shirt top", "a tee"),
    "trouser": ("a trouser", "trousers", "a pair of trousers", "pants"),
    "pullover": ("a pullover", "a sweater", "a jumper"),
    "dress": ("a dress", "a summer dress"),
    "coat": ("a coat", "a jacket"),
    "sandal": ("a sandal", "sandals"),
    "shirt": ("a shirt", "a button-up shirt"),
    "sneaker": ("a sneaker", "sneakers", "a trainer"),
    "bag": ("a bag", "a handbag"),
    "ankle boot": ("an ankle boot", "ankle boots", "a boot"),
}
PREFIXES = ("", "a photo of ", "a picture of ", "a product photo of ")


def class_query(name: str) -> str:
    """The query a user types for a class, as the README's examples do: "a dress", "an ankle boot"."""
    return FASHION_PHRASES[name][0]


@dataclass
class CaptionedImages:
    """uint8 images [N, 3, H, W], each with the captions to draw from and its group."""

    images: torch.Tensor
    captions: list[tuple[str, ...]]
    groups: np.ndarray

    def __len__(self) -> int:
        return len(self.images)


def scene_items(dataset) -> CaptionedImages:
    """A CSS split (tirg.data.CSSDataset with captions) as training items, grouped by caption."""
    captions = [str(c) for c in dataset.captions]
    group_of: dict[str, int] = {}
    groups = np.array([group_of.setdefault(c, len(group_of)) for c in captions], dtype=np.int64)
    return CaptionedImages(dataset.pixels, [(c,) for c in captions], groups)


def fashion_items(split: str, image_size: int, limit: int | None = None) -> CaptionedImages | None:
    """Fashion-MNIST as RGB at the model's size (bicubic, as open_clip's preprocess resizes), captions from
    the class names; groups are negative so that they never meet a scene's."""
    data = fashion_mnist(split)
    if data is None:
        return None
    pixels, classes = data[0][:limit], data[1][:limit]
    resized = np.stack([np.asarray(Image.fromarray(p).resize((image_size, image_size), Image.Resampling.BICUBIC))
                        for p in pixels])
    images = torch.from_numpy(resized)[:, None].expand(-1, 3, -1, -1).contiguous()
    phrasings = [tuple(prefix + phrase for phrase in FASHION_PHRASES[name] for prefix in PREFIXES)
                 for name in LABELS]
    return CaptionedImages(images, [phrasings[c] for c in classes], -1 - classes.astype(np.int64))


def join(parts: list[CaptionedImages]) -> CaptionedImages:
    return CaptionedImages(torch.cat([p.images for p in parts]), [c for p in parts for c in p.captions],
                           np.concatenate([p.groups for p in parts]))


def epoch_order(sizes: list[int], per_epoch: list[int], rng: random.Random) -> list[int]:
    """Indices into the joined items for one epoch: `per_epoch[k]` items drawn from part k (all of it when
    that is its size), shuffled together so that every batch mixes the parts."""
    order, offset = [], 0
    for size, count in zip(sizes, per_epoch, strict=True):
        order += [offset + i for i in rng.sample(range(size), min(count, size))]
        offset += size
    rng.shuffle(order)
    return order


def grouped_clip_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor,
                      groups: torch.Tensor) -> torch.Tensor:
    """open_clip's symmetric contrastive loss (features already normalized, as open_clip's model returns
    them), with each row's target spread evenly over the items of its group instead of only its own."""
    logits = logit_scale * image_features @ text_features.t()
    same = (groups[:, None] == groups[None, :]).float()
    targets = same / same.sum(dim=1, keepdim=True)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets)) / 2
