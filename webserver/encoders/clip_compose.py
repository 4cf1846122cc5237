"""How a CLIP encoder answers composed (image + modification text) queries: in its own space, so any CLIP
collection answers them as it is.

- "sum": the zero-shot weighted sum of the image and text vectors (tirg.combiner.weighted_sum), any weights;
- "trained": a combiner trained by `python -m tirg --model=clip_combiner` on these very CLIP weights (it
  records them; a combiner made for other weights is refused at load).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tirg.combiner import FILE_WEIGHTS, file_weights_id
from webserver.errors import EncoderLoadError, InvalidInput

SUM, TRAINED = "sum", "trained"
COMPOSERS = (SUM, TRAINED)


class ClipComposers:
    def __init__(self, *, model_name: str, weights_id: str, sum_text_weight: float, default: str = "auto",
                 combiner_checkpoint: str | Path | None = None, device: torch.device | str = "cpu"):
        """`weights_id`: the loaded CLIP weights as tirg.combiner.clip_weights_id names them. `default`: auto
        (trained where a combiner is loaded, else sum), sum or trained."""
        self.sum_text_weight = sum_text_weight
        self.device = device
        self.combiner = _load_combiner(Path(combiner_checkpoint), model_name, weights_id, device) \
            if combiner_checkpoint else None
        # The combiner's file hash, for ids that name it (a fused collection's).
        self.combiner_id = file_weights_id(combiner_checkpoint).removeprefix(FILE_WEIGHTS)[:12] \
            if self.combiner is not None and combiner_checkpoint else None
        if default == TRAINED and self.combiner is None:
            raise EncoderLoadError("CLIP_COMPOSER=trained needs CLIP_COMBINER_CHECKPOINT (a combiner trained by "
                                   "python -m tirg --model=clip_combiner); or set CLIP_COMPOSER=auto or sum.")
        self.default = default if default != "auto" else (TRAINED if self.combiner is not None else SUM)

    @property
    def available(self) -> tuple[str, ...]:
        return COMPOSERS if self.combiner is not None else (SUM,)

    def describe(self) -> str:
        """What composes by default, and what a request may pick instead."""
        loaded = {SUM: f"sum (text weight {self.sum_text_weight:g})", TRAINED: "trained combiner"}
        others = [loaded[name] for name in self.available if name != self.default]
        return loaded[self.default] + (f"; also {', '.join(others)}" if others else "")

    def resolve(self, requested: str | None) -> str:
        if requested is None:
            return self.default
        if requested not in self.available:
            raise InvalidInput(f"composer {requested!r} is not loaded here; this server composes with "
                               f"{' or '.join(self.available)}" + ("" if self.combiner is not None else
                               " (CLIP_COMBINER_CHECKPOINT loads a trained one)") + ".")
        return requested

    def compose(self, image: np.ndarray, text: np.ndarray, composer: str) -> np.ndarray:
        from tirg.combiner import weighted_sum

        with torch.inference_mode():
            image_t, text_t = torch.from_numpy(image), torch.from_numpy(text)
            if composer == TRAINED and self.combiner is not None:
                composed = self.combiner(image_t.to(self.device), text_t.to(self.device))
            else:
                composed = weighted_sum(image_t, text_t, self.sum_text_weight)
        return composed.float().cpu().numpy().astype(np.float32)


def _load_combiner(path: Path, model_name: str, weights_id: str, device: torch.device | str):
    from tirg.combiner import load_combiner

    setting = f"CLIP_COMBINER_CHECKPOINT={str(path)!r}"
    if not path.is_file():
        raise EncoderLoadError(f"{setting}: no such file. Train one with python -m tirg --model=clip_combiner "
                               "(README, 'Composed search on a CLIP collection'), or unset it.")
    try:
        combiner = load_combiner(path, device)
    except Exception as exc:  # torch.load raises pickle, zip, key and shape errors alike
        raise EncoderLoadError(f"{setting} could not be loaded: {exc}") from None
    config = combiner.config
    if (config.clip_model, config.clip_weights) != (model_name, weights_id):
        raise EncoderLoadError(
            f"{setting} was trained on the features of CLIP {config.clip_model} with weights {config.clip_weights}, "
            f"but this server's CLIP is {model_name} with weights {weights_id}: its vectors would mean nothing "
            "here. Train a combiner for these weights, or unset CLIP_COMBINER_CHECKPOINT (composed queries then "
            "use the zero-shot sum).")
    return combiner
