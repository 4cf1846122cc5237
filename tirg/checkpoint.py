"""Checkpoints that describe themselves: config + vocabulary + weights in one file.

`load_tirg(path)` rebuilds the model from the file alone, no data set needed.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from tirg.models import ComposeModel, TirgConfig, create_model
from tirg.text import Vocabulary

FORMAT = "tirg-checkpoint/1"


def save_checkpoint(path: str | Path, model: ComposeModel, *, weights_dtype: torch.dtype | None = None,
                    training: dict[str, Any] | None = None, **extra: Any) -> Path:
    """`extra` (iteration, metrics, ...) is stored beside the weights under `meta`. `weights_dtype`
    (e.g. torch.float16, to ship a file half the size) converts the floating tensors; loading converts
    them back to the model's dtype. `training` (optimizer, iteration, RNG states: tirg.train) lets a run
    resume exactly. Written to a temporary file and renamed, so a kill never leaves a truncated file."""
    state = {k: _stored(v.detach().cpu(), weights_dtype) for k, v in model.state_dict().items()}
    data = {"format": FORMAT, "config": model.config.to_dict(), "vocabulary": model.vocabulary.to_list(),
            "state_dict": state, "meta": extra}
    if training is not None:
        data["training"] = training
    return save_atomically(data, path)


def save_atomically(data: dict, path: str | Path) -> Path:
    """torch.save to a temporary file, then rename: a kill never leaves a truncated file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    torch.save(data, partial)
    os.replace(partial, path)
    return path


def _stored(tensor: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    return tensor.to(dtype) if dtype is not None and tensor.is_floating_point() else tensor


def round_weights(model: ComposeModel, dtype: torch.dtype) -> ComposeModel:
    """Round the model's floating weights to `dtype` and back, in place: the model then computes exactly
    what one loaded from a file saved with `weights_dtype=dtype` computes."""
    with torch.no_grad():
        for tensor in list(model.parameters()) + list(model.buffers()):
            if tensor.is_floating_point():
                tensor.copy_(tensor.to(dtype))
    return model


def read_checkpoint(path: str | Path, file_format: str = FORMAT) -> dict:
    data = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or data.get("format") != file_format:
        raise ValueError(f"{path} is not a {file_format} file")
    return data


def load_model(path: str | Path, device: str | torch.device = "cpu") -> ComposeModel:
    data = read_checkpoint(path)
    model = create_model(TirgConfig(**data["config"]), Vocabulary.from_list(data["vocabulary"]))
    model.load_state_dict(data["state_dict"])
    return model.to(device).eval()


def weights_fingerprint(model: ComposeModel) -> str:
    """A short hash of config + vocabulary + weights: the same model gives the same fingerprint whichever
    file it was saved in (a run's checkpoint.pt and its exported tirg.pt agree)."""
    digest = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    digest.update("\n".join(model.vocabulary.to_list()).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        tensor = tensor.detach().cpu()
        digest.update((tensor.float() if tensor.dtype == torch.bfloat16 else tensor).contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]
