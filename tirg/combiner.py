"""Composers over a frozen CLIP space: (image vector, text vector) -> a query vector in the same space as
the CLIP image vectors, so a collection of CLIP vectors answers "this one, but ..." as it is (no re-index).

- `weighted_sum`: the zero-shot "image + text" baseline of the composed-retrieval literature; works with
  any CLIP weights.
- `ClipCombiner`: TIRG's gated residual (Vo et al. 2019) over frozen CLIP features, trained on triplets
  (`python -m tirg --model=clip_combiner`). It records which CLIP weights made its training features, so a
  caller can refuse to pair it with other ones.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tirg.checkpoint import read_checkpoint, save_atomically

FORMAT = "clip-combiner/1"
FILE_WEIGHTS = "sha256:"  # the prefix of a file's weights id


def weighted_sum(image: torch.Tensor, text: torch.Tensor, text_weight: float) -> torch.Tensor:
    """normalize((1 - w) * image + w * text), both inputs normalized first: w 0 is an image query, 1 a
    text query."""
    image, text = F.normalize(image.float(), dim=-1), F.normalize(text.float(), dim=-1)
    return F.normalize((1.0 - text_weight) * image + text_weight * text, dim=-1)


@dataclass
class CombinerConfig:
    dimension: int
    hidden: int = 512
    dropout: float = 0.3  # on the residual branch, in training (0.1 and no weight decay overfit: docs/results.md)
    clip_model: str = ""  # the open_clip architecture whose features it was trained on
    clip_weights: str = ""  # those weights: "sha256:<hex>" of a checkpoint file, or an open_clip tag

    def to_dict(self) -> dict:
        return asdict(self)


class ClipCombiner(nn.Module):
    """f = a0 * sigmoid(gate([x; t])) * x + a1 * residual([x; t]), normalized; x, t unit CLIP vectors.

    `logit_scale` is the training temperature (as CLIP's), unused at inference."""

    def __init__(self, config: CombinerConfig):
        super().__init__()
        self.config = config
        d, h = config.dimension, config.hidden
        self.gate = nn.Sequential(nn.Linear(2 * d, h), nn.ReLU(), nn.Linear(h, d))
        self.residual = nn.Sequential(nn.Linear(2 * d, h), nn.ReLU(), nn.Dropout(config.dropout), nn.Linear(h, d))
        self.a = nn.Parameter(torch.tensor([1.0, 1.0]))
        self.logit_scale = nn.Parameter(torch.tensor(float(torch.log(torch.tensor(20.0)))))

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        image, text = F.normalize(image.float(), dim=-1), F.normalize(text.float(), dim=-1)
        both = torch.cat([image, text], dim=-1)
        composed = self.a[0] * torch.sigmoid(self.gate(both)) * image + self.a[1] * self.residual(both)
        return F.normalize(composed, dim=-1)


def file_weights_id(path: str | Path) -> str:
    """How a combiner names CLIP weights loaded from a file: their sha256."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return f"{FILE_WEIGHTS}{digest.hexdigest()}"


def clip_weights_id(pretrained: str | Path) -> str:
    """CLIP weights as a combiner records them: a checkpoint file's sha256 ("sha256:<hex>"), else the
    open_clip tag itself."""
    path = Path(pretrained).expanduser()
    return file_weights_id(path) if path.is_file() else str(pretrained)


def save_combiner(path: str | Path, model: ClipCombiner, **meta) -> Path:
    """Config + weights (+ `meta`: results, options) in one file, written atomically."""
    data = {"format": FORMAT, "config": model.config.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "meta": json.loads(json.dumps(meta))}
    return save_atomically(data, path)


def load_combiner(path: str | Path, device: str | torch.device = "cpu") -> ClipCombiner:
    data = read_checkpoint(path, FORMAT)
    model = ClipCombiner(CombinerConfig(**data["config"]))
    model.load_state_dict(data["state_dict"])
    return model.to(device).eval()
