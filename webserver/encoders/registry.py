"""The encoders one server has loaded, at most one per kind; a collection is served by the one whose
id and dimension it recorded."""
from __future__ import annotations

from webserver.encoders.base import CLIP, FUSED, TIRG, Encoder
from webserver.errors import InvalidInput

SETTING_BY_KIND = {CLIP: "CLIP_MODEL / CLIP_PRETRAINED", TIRG: "TIRG_CHECKPOINT",
                   FUSED: "TIRG_CHECKPOINT, CLIP_COMBINER_CHECKPOINT and FUSED_TIRG_WEIGHT"}


class EncoderSet:
    def __init__(self, *encoders: Encoder):
        self.by_kind: dict[str, Encoder] = {}
        for encoder in encoders:
            if encoder.kind in self.by_kind:
                raise ValueError(f"two {encoder.kind} encoders given")
            self.by_kind[encoder.kind] = encoder

    def get(self, kind: str) -> Encoder:
        if kind not in SETTING_BY_KIND:
            raise InvalidInput(f"Unknown encoder kind {kind!r}; use one of {sorted(SETTING_BY_KIND)}.")
        if kind not in self.by_kind:
            raise InvalidInput(f"This server has no {kind} model loaded; start it with "
                               f"{SETTING_BY_KIND[kind]} set.")
        return self.by_kind[kind]

    def matching(self, encoder_id: str, dimension: int) -> Encoder | None:
        for encoder in self.by_kind.values():
            if encoder.encoder_id == encoder_id and encoder.dimension == dimension:
                return encoder
        return None

    @property
    def clip(self) -> Encoder | None:
        return self.by_kind.get(CLIP)

    @property
    def tirg(self) -> Encoder | None:
        return self.by_kind.get(TIRG)

    @property
    def fused(self) -> Encoder | None:
        return self.by_kind.get(FUSED)

    def describe(self) -> str:
        return ", ".join(f"{e.encoder_id} (dim {e.dimension})" for e in self.by_kind.values())
