"""The CSS data set in the original format (generated here, or the real files for those who have them).

Images are decoded once into a uint8 tensor: CSS images are small, and on a 2-core machine decoding
PNGs every step would cost more than the model.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

DATA_FILE = "css_toy_dataset_novel2_small.dup.npy"


def read_css_file(path: str | Path) -> dict:
    """The pickled dict of a CSS data file; `encoding="latin1"` reads the original Python 2 files."""
    data = np.load(Path(path), allow_pickle=True, encoding="latin1")
    return data.item() if isinstance(data, np.ndarray) else data


@dataclass(frozen=True)
class Query:
    source: int
    text: str
    target: int


def queries_by_source(queries: Sequence[Query]) -> dict[int, list[Query]]:
    by_source: dict[int, list[Query]] = {}
    for query in queries:
        by_source.setdefault(query.source, []).append(query)
    return by_source


class CSSDataset:
    """One split: labels, (source, text, target) queries, and the images as a uint8 tensor."""

    def __init__(self, root: str | Path, split: str, image_size: int = 64, load_images: bool = True):
        self.root = Path(root)
        self.split = split
        self.image_size = image_size
        data = read_css_file(self.root / DATA_FILE)[split]
        self.objects = data["objects_img"]
        count = len(self.objects)
        self.labels = np.asarray(data["labels"] if "labels" in data else range(count), dtype=np.int64)
        self.mods = data["mods"]
        self.queries = [Query(int(f), str(mod["to_str"]), int(t)) for mod in self.mods
                        for f, t in zip(mod["from"], mod["to"], strict=True)]
        self.captions = data.get("captions")
        self._by_source = queries_by_source(self.queries)
        self.images = self._load_images() if load_images else None

    def __len__(self) -> int:
        return len(self.objects)

    def image_path(self, index: int) -> Path:
        return self.root / "images" / f"css_{self.split}_{index:06d}.png"

    def texts(self) -> list[str]:
        return [str(mod["to_str"]) for mod in self.mods]

    @property
    def pixels(self) -> torch.Tensor:
        """The images as uint8 [N, 3, H, W]; an error when the split was opened without them."""
        if self.images is None:
            raise ValueError(f"the {self.split} split was opened with load_images=False")
        return self.images

    def _load_images(self) -> torch.Tensor:
        size = self.image_size
        pixels = np.empty((len(self), size, size, 3), dtype=np.uint8)
        for i in range(len(self)):
            with Image.open(self.image_path(i)) as image:
                image = image.convert("RGB")
                if image.size != (size, size):
                    image = image.resize((size, size), Image.Resampling.BILINEAR)
                pixels[i] = np.asarray(image)
        return torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()

    def sample_queries(self, count: int, rng: random.Random) -> list[Query]:
        """Half the batch in pairs sharing a source image with different texts (as the reference
        samples them), so the model must read the text; the rest at random."""
        batch: list[Query] = []
        multi = [s for s, qs in self._by_source.items() if len(qs) > 1]
        while multi and len(batch) < count // 2:
            batch.extend(rng.sample(self._by_source[rng.choice(multi)], 2))
        while len(batch) < count:
            batch.append(rng.choice(self.queries))
        return batch[:count]


class ImageNormalizer:
    """uint8 [B, 3, H, W] -> normalized float, on the model's device."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], device: torch.device | str):
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1) * 255
        self.device = device

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return (images.to(self.device).float() - self.mean) / self.std
