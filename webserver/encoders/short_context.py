"""Text encoding over the real length of the captions, not the model's whole context (77 tokens for CLIP).

open_clip's CLIP text tower is causally masked and pools at the end-of-text token, so every position up to
that token sees only earlier positions: running the transformer over positions 0..L-1, with L one past the
batch's last end-of-text token, gives the same vector as the full context at a fraction of the cost (a
short query is ~8 tokens). open_clip 3.3's encode_text always adds the whole positional table, hence these
few lines. Towers where this is not exact (no causal mask, pooling elsewhere, Hugging Face text towers)
keep the model's own encode_text.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from open_clip.model import CLIP
from open_clip.transformer import text_global_pool

TextEncode = Callable[[torch.Tensor], torch.Tensor]


class ShortContextText(torch.nn.Module):
    """The text tower over every column of `tokens`: the caller cuts them to the real length first. A
    module of its own so that ONNX Runtime can run it (onnx_towers) with the length a dynamic axis."""

    def __init__(self, model: CLIP, pool_type: str, eos_id: int | None):
        super().__init__()
        self.model, self.pool_type, self.eos_id = model, pool_type, eos_id

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        model, length = self.model, tokens.shape[1]
        cast_dtype = model.transformer.get_cast_dtype()
        x = model.token_embedding(tokens).to(cast_dtype) + model.positional_embedding[:length].to(cast_dtype)
        x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
        x = text_global_pool(model.ln_final(x), tokens, self.pool_type, eos_token_id=self.eos_id)
        if model.text_projection is not None:
            x = model.text_projection(x) if isinstance(model.text_projection, torch.nn.Linear) \
                else x @ model.text_projection
        return F.normalize(x, dim=-1)


def short_context_tower(model: torch.nn.Module) -> ShortContextText | None:
    """The tower over the real length, or None where that would not be exact."""
    if not isinstance(model, CLIP) or getattr(model, "attn_mask", None) is None:
        return None
    pool_type, eos = model.text_pool_type, getattr(model, "text_eos_id", None)
    if pool_type not in ("argmax", "eos") or (pool_type == "eos" and eos is None):
        return None
    return ShortContextText(model, pool_type, None if eos is None else int(eos))


def real_length(tokens: torch.Tensor, tower: ShortContextText) -> int:
    """One past the batch's last pooled (end-of-text) position."""
    if tower.pool_type == "argmax":  # the end-of-text token has the highest id
        pooled = tokens.argmax(dim=-1)
    else:
        assert tower.eos_id is not None  # short_context_tower pools at "eos" only with an id
        pooled = torch.eq(tokens, tower.eos_id).int().argmax(dim=-1)
    return int(pooled.max()) + 1


def short_context_encode(model: torch.nn.Module) -> TextEncode | None:
    """encode(tokens) -> unit vectors over the real length, or None where that would not be exact."""
    tower = short_context_tower(model)
    if tower is None:
        return None
    return lambda tokens: tower(tokens[:, :real_length(tokens, tower)])
