"""open_clip wrapper: any architecture by name, weights by pretrained tag or local file.

The architectures in `model_configs/` (small ones for tests and the offline demo) are registered with
open_clip before loading, so they are named like the built-in ones.
"""
from __future__ import annotations

import functools
import os
import socket
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import open_clip
import torch
from PIL import Image

from tirg.combiner import FILE_WEIGHTS, clip_weights_id
from webserver.encoders.base import CLIP, choose_precision, pick_device, unit_rows
from webserver.encoders.clip_compose import ClipComposers
from webserver.encoders.onnx_towers import OnnxTowers, built_or_torch, cache_key, choose_runtime
from webserver.encoders.short_context import short_context_encode, short_context_tower
from webserver.errors import EncoderLoadError

MODEL_CONFIG_DIR = Path(__file__).parent / "model_configs"


@functools.cache
def register_model_configs() -> None:
    """Once per process: open_clip keeps one global list of config folders and rescans it on each add."""
    open_clip.add_model_config(MODEL_CONFIG_DIR)


def save_random_weights(model_name: str, path: Path, seed: int = 0) -> Path:
    """Seeded random weights of an architecture, saved the way open_clip loads a local file: a dev model
    (scripts/make_dev_model.py), benchmarks (timing does not depend on the weights) and tests."""
    register_model_configs()
    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": open_clip.create_model(model_name).state_dict()}, path)
    return path


def describe_weights(model_name: str, pretrained: str) -> str:
    """The encoder id a collection records: same architecture + same weights -> same id."""
    return encoder_id_of(model_name, clip_weights_id(pretrained))


def encoder_id_of(model_name: str, weights_id: str) -> str:
    """From the weights id (tirg.combiner.clip_weights_id: a file's sha256, or a tag): a file's is
    `file-<first 12 hex digits>`."""
    if weights_id.startswith(FILE_WEIGHTS):
        return f"open_clip/{model_name}/file-{weights_id.removeprefix(FILE_WEIGHTS)[:12]}"
    return f"open_clip/{model_name}/{weights_id}"


class ClipEncoder:
    """Text and images -> L2-normalized vectors in one space, batched, under inference_mode; image + text
    -> a query in that space (clip_compose)."""

    kind = CLIP
    modes = frozenset({"text", "image", "composed"})

    def __init__(self, model_name: str, pretrained: str, *, device: str = "auto",
                 precision: str = "fp32", batch_size: int = 32, cpu_class: str | None = None,
                 composer: str = "auto", sum_text_weight: float = 0.4,
                 combiner_checkpoint: str | Path | None = None, runtime: str = "torch",
                 onnx_cache_dir: Path | None = None):
        """`precision` is auto, fp32 or bf16, resolved against the hardware (`cpu_class` forces the CPU
        class, e.g. to exercise the fallback on a machine with bf16). `composer`, `sum_text_weight` and
        `combiner_checkpoint`: how composed queries are made (clip_compose.ClipComposers). `runtime`: torch,
        onnx or auto (onnx_towers.choose_runtime), its exported towers kept in `onnx_cache_dir` (default: a
        temporary folder, exported again by the next process)."""
        register_model_configs()
        self.device = pick_device(device)
        self.batch_size = batch_size
        # bf16 weights and activations, not autocast: ~3.4x faster than fp32 for ViT-B-32 on an AVX-512
        # BF16 CPU, where autocast was no faster than fp32; ~10x slower on AVX2 only, hence the choice.
        self.precision = choose_precision("CLIP_PRECISION", precision, self.device, cpu_class)
        self.dtype = self.precision.dtype
        self.model, self.preprocess, self.tokenizer = _load(model_name, pretrained, self.device)
        self.model.to(self.dtype)
        self.weights_id = clip_weights_id(pretrained)  # hashed once: the encoder id and the combiner check
        self.encoder_id = encoder_id_of(model_name, self.weights_id)
        # Over the captions' real length where that is exact (8 tokens instead of 77 for a short query).
        self.encode_text_tokens = short_context_encode(self.model) or (
            lambda tokens: self.model.encode_text(tokens, normalize=True))
        self.onnx = self._onnx_towers(runtime, onnx_cache_dir)
        # One forward pass at a time: torch already uses every core for one batch.
        self._lock = threading.Lock()
        self.dimension = int(self._probe_dimension())
        self.composers = ClipComposers(model_name=model_name, weights_id=self.weights_id,
                                       sum_text_weight=sum_text_weight, default=composer,
                                       combiner_checkpoint=combiner_checkpoint, device=self.device)
        if self.composers.combiner is not None and self.composers.combiner.config.dimension != self.dimension:
            raise EncoderLoadError(f"CLIP_COMBINER_CHECKPOINT composes {self.composers.combiner.config.dimension}-d "
                                   f"vectors; this CLIP makes {self.dimension}-d ones.")

    @property
    def runtime(self) -> str:
        return "torch" if self.onnx is None else "onnxruntime"

    def _onnx_towers(self, requested: str, cache_dir: Path | None) -> OnnxTowers | None:
        text_tower = short_context_tower(self.model)
        runtime = choose_runtime("CLIP_RUNTIME", requested, self.precision.precision, self.device,
                                 None if text_tower is not None else "another text tower (not causal, or pooled "
                                                                     "elsewhere than the end-of-text token)")

        def build(cache: Path) -> OnnxTowers:
            assert text_tower is not None  # choose_runtime picks onnx only with one
            return OnnxTowers(self.model, text_tower, cache_dir=cache, key=cache_key(self.encoder_id))

        return built_or_torch("CLIP_RUNTIME", requested, runtime, build, cache_dir)

    def _probe_dimension(self) -> int:
        return self.encode_texts(["probe"]).shape[1]

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        batches = [images[i:i + self.batch_size] for i in range(0, len(images), self.batch_size)]
        parts = [self.encode_pixels(self.preprocess_images(batch)) for batch in batches]
        return np.concatenate(parts) if parts else np.zeros((0, self.dimension), np.float32)

    def preprocess_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """The model's input tensor: CPU work with no model, safe to run in reader threads."""
        return torch.stack([self.preprocess(image.convert("RGB")) for image in images])

    def encode_pixels(self, pixels: torch.Tensor) -> np.ndarray:
        parts = [self._encode_pixel_batch(pixels[i:i + self.batch_size])
                 for i in range(0, len(pixels), self.batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, self.dimension), np.float32)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        batches = [texts[i:i + self.batch_size] for i in range(0, len(texts), self.batch_size)]
        parts = [self._encode_text_batch(list(batch)) for batch in batches]
        return np.concatenate(parts) if parts else np.zeros((0, self.dimension), np.float32)

    def composer_for(self, requested: str | None) -> str | None:
        return self.composers.resolve(requested)

    @property
    def composing(self) -> str:
        return self.composers.describe()

    def compose(self, images: Sequence[Image.Image], texts: Sequence[str], composer: str | None = None) -> np.ndarray:
        if len(images) != len(texts):
            raise ValueError("one modification text per image")
        return self.compose_vectors(self.encode_images(images), self.encode_texts(texts), composer)

    composes_vectors = True

    def compose_vectors(self, image_vectors: np.ndarray, text_vectors: np.ndarray,
                        composer: str | None = None) -> np.ndarray:
        return self.composers.compose(image_vectors, text_vectors, self.composers.resolve(composer))

    def _encode_pixel_batch(self, pixels: torch.Tensor) -> np.ndarray:
        with self._lock, torch.inference_mode():
            if self.onnx is not None:
                return unit_rows(self.onnx.encode_pixels(pixels))
            features = self.model.encode_image(pixels.to(self.device, self.dtype), normalize=True)
        return _to_unit_numpy(features)

    def _encode_text_batch(self, texts: list[str]) -> np.ndarray:
        tokens = self.tokenizer(texts)
        with self._lock, torch.inference_mode():
            if self.onnx is not None:
                return unit_rows(self.onnx.encode_tokens(tokens))
            features = self.encode_text_tokens(tokens.to(self.device))
        return _to_unit_numpy(features)


def _to_unit_numpy(features: torch.Tensor) -> np.ndarray:
    # Re-normalize after a bf16 pass so stored vectors are unit length to fp32 precision.
    return unit_rows(features.float().cpu().numpy())


HUB_HOST = "huggingface.co"


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    """A quick probe, so an offline start fails in seconds rather than after a minute of retries."""
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def tag_weights_cached(model_name: str, tag: str) -> bool:
    """Whether open_clip would find a tag's weights without a network: in the Hugging Face cache (or a
    mirror's, HF_HOME / HF_HUB_CACHE) or in open_clip's URL download cache."""
    from huggingface_hub import try_to_load_from_cache
    from open_clip.pretrained import HF_WEIGHTS_NAME, get_pretrained_cfg

    cfg = get_pretrained_cfg(model_name, tag)
    if not cfg:
        return False
    if cfg.get("file"):
        return Path(cfg["file"]).is_file()
    if cfg.get("hf_hub"):
        repo_id, filename = os.path.split(cfg["hf_hub"])
        filename = filename or HF_WEIGHTS_NAME
        names = [filename, str(Path(filename).with_suffix(".safetensors")), "open_clip_model.safetensors"]
        return any(isinstance(try_to_load_from_cache(repo_id, name), str) for name in names)
    url = cfg.get("url", "")
    return bool(url) and (Path("~/.cache/clip").expanduser() / os.path.basename(url)).is_file()


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def _load(model_name: str, pretrained: str, device: torch.device):
    if model_name not in open_clip.list_models():
        raise EncoderLoadError(
            f"CLIP_MODEL={model_name!r} is not an open_clip architecture; choose one of "
            f"open_clip.list_models() or add a JSON config to {MODEL_CONFIG_DIR}.")
    if not pretrained.strip():
        raise EncoderLoadError("CLIP_PRETRAINED is empty: random weights cannot search. Set it to an "
                               "open_clip tag (needs a network once) or a local checkpoint file.")
    path = Path(pretrained).expanduser()
    looks_like_path = path.suffix in {".pt", ".pth", ".bin", ".safetensors"} or "/" in pretrained
    if looks_like_path and not path.is_file():
        raise EncoderLoadError(f"CLIP_PRETRAINED={pretrained!r}: no such checkpoint file.")
    if not path.is_file() and not tag_weights_cached(model_name, pretrained) and \
            (_hub_offline() or not _hub_reachable()):
        raise EncoderLoadError(
            f"CLIP_PRETRAINED={pretrained!r} is a pretrained tag, downloaded from the model hub, its weights "
            f"are not in the local cache, and the hub ({HUB_HOST}) cannot be reached from here. Offline, set "
            "CLIP_PRETRAINED to a local checkpoint file (and CLIP_MODEL to its architecture), or copy the "
            "weights into the Hugging Face cache (HF_HOME); see README, 'Models'.")
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            model_name, pretrained=str(path) if path.is_file() else pretrained, device=device)
    except Exception as exc:  # open_clip raises RuntimeError, hub and OS errors alike
        raise EncoderLoadError(
            f"Could not load CLIP_MODEL={model_name!r} with CLIP_PRETRAINED={pretrained!r}: {exc}. "
            "A pretrained tag such as 'openai' is downloaded from the model hub, which needs a network; "
            "offline, set CLIP_PRETRAINED to a local checkpoint file (see README, 'Models').") from None
    model.eval()
    return model, preprocess, open_clip.get_tokenizer(model_name)
