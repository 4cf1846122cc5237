"""Checkpoints that describe themselves: config + vocabulary + weights in one file.

`load_tirg(path)` rebuilds the model from the file alone, no data set needed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tirg.models import ComposeModel, TirgConfig, create_model
from tirg.text import Vocabulary

FORMAT = "tirg-checkpoint/1"


def save_checkpoint(path: str | Path, model: ComposeModel, **extra: Any) -> Path:
    """`extra` (iteration, metrics, ...) is stored beside the weights under `meta`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"format": FORMAT, "config": model.config.to_dict(), "vocabulary": model.vocabulary.to_list(),
                "state_dict": state, "meta": extra}, path)
    return path


def read_checkpoint(path: str | Path) -> dict:
    data = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} file")
    return data


def load_model(path: str | Path, device: str | torch.device = "cpu") -> ComposeModel:
    data = read_checkpoint(path)
    model = create_model(TirgConfig(**data["config"]), Vocabulary.from_list(data["vocabulary"]))
    model.load_state_dict(data["state_dict"])
    return model.to(device).eval()
