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


def short_context_encode(model: torch.nn.Module) -> TextEncode | None:
    """encode(tokens) -> unit vectors over the real length, or None where that would not be exact."""
    if not isinstance(model, CLIP) or getattr(model, "attn_mask", None) is None:
        return None
    pool_type, eos = model.text_pool_type, getattr(model, "text_eos_id", None)
    if pool_type not in ("argmax", "eos") or (pool_type == "eos" and eos is None):
        return None
    eos_id = int(eos) if eos is not None else -1

    def pooled_positions(tokens: torch.Tensor) -> torch.Tensor:
        if pool_type == "argmax":  # the end-of-text token has the highest id
            return tokens.argmax(dim=-1)
        return torch.eq(tokens, eos_id).int().argmax(dim=-1)

    def encode(tokens: torch.Tensor) -> torch.Tensor:
        length = int(pooled_positions(tokens).max()) + 1
        tokens = tokens[:, :length]
        cast_dtype = model.transformer.get_cast_dtype()
        x = model.token_embedding(tokens).to(cast_dtype) + model.positional_embedding[:length].to(cast_dtype)
        x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
        x = text_global_pool(model.ln_final(x), tokens, pool_type, eos_token_id=eos)
        if model.text_projection is not None:
            x = model.text_projection(x) if isinstance(model.text_projection, torch.nn.Linear) \
                else x @ model.text_projection
        return F.normalize(x, dim=-1)

    return encode
