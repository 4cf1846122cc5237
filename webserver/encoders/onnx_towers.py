"""CLIP towers run by ONNX Runtime instead of torch eager (CLIP_RUNTIME).

Why: on a CPU in fp32, torch eager spends most of a one-query pass outside the matmuls (per-operator
dispatch, layout and allocation), ONNX Runtime runs the same graph fused. Measured on the 2-core AVX2 EPYC
with ViT-B-32 (docs/benchmarks.md, "ONNX Runtime"): the text tower over 8 tokens ~3.7x faster, an image
~1.7x, with cosine >= 0.99999 to torch's vectors. Where bf16 runs (an AVX-512 BF16 CPU, CUDA) torch stays.

The towers are exported once per weights (torch.onnx's dynamo exporter: dynamic batch, and the text
length dynamic too, since text runs over the real length: short_context) into a cache folder, keyed by the
encoder id, the torch version and the tower; a file is written beside its final name and renamed, so two
processes starting at once never read half a file.
"""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from webserver.encoders.short_context import ShortContextText, real_length
from webserver.errors import EncoderLoadError

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "torch", "onnx")


def onnx_runtime_installed() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def choose_runtime(requested: str, precision: str, device: torch.device, text_exact: bool) -> str:
    """torch or onnx. auto: onnx for fp32 on a CPU where onnxruntime is installed and the text tower can
    run over the real length (the graph is exported with that length dynamic); torch otherwise."""
    if requested not in RUNTIMES:
        raise EncoderLoadError(f"CLIP_RUNTIME={requested!r}: choose one of {', '.join(RUNTIMES)}.")
    fits = device.type == "cpu" and precision == "fp32" and text_exact
    if requested == "auto":
        return "onnx" if fits and onnx_runtime_installed() else "torch"
    if requested == "onnx" and not fits:
        raise EncoderLoadError(
            "CLIP_RUNTIME=onnx runs fp32 on a CPU, for open_clip CLIP text towers (causal mask, end-of-text "
            f"pooling); this encoder runs {precision} on {device.type}{'' if text_exact else ', another text tower'}. "
            "Set CLIP_RUNTIME=auto or torch.")
    if requested == "onnx" and not onnx_runtime_installed():
        raise EncoderLoadError("CLIP_RUNTIME=onnx needs the onnxruntime package (requirements.txt).")
    return requested


class ImageTower(torch.nn.Module):
    def __init__(self, model: Any):  # an open_clip model
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels, normalize=True)


class OnnxTowers:
    """The text tower (over the real length) and the image tower as ONNX Runtime sessions. Thread-safe:
    a session may run from several threads at once."""

    def __init__(self, model: Any, text_tower: ShortContextText, *, cache_dir: Path, key: str,
                 threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.log_severity_level = 3  # errors only: its warnings about unused initializers are noise here
        sample_tokens = torch.ones((2, 4), dtype=torch.long)
        size = model.visual.image_size
        size = size if isinstance(size, tuple) else (size, size)
        sample_pixels = torch.zeros((2, 3, *size), dtype=torch.float32)
        self._text_tower = text_tower
        text_file = _exported(text_tower, sample_tokens, cache_dir / f"{key}-text.onnx",
                              ("tokens", {0: "batch", 1: "length"}))
        image_file = _exported(ImageTower(model), sample_pixels, cache_dir / f"{key}-image.onnx",
                               ("pixels", {0: "batch"}))
        self.text = ort.InferenceSession(str(text_file), options, providers=["CPUExecutionProvider"])
        self.image = ort.InferenceSession(str(image_file), options, providers=["CPUExecutionProvider"])

    def encode_tokens(self, tokens: torch.Tensor) -> np.ndarray:
        cut = tokens[:, :real_length(tokens, self._text_tower)]
        return self.text.run(None, {"tokens": cut.numpy().astype(np.int64)})[0]

    def encode_pixels(self, pixels: torch.Tensor) -> np.ndarray:
        return self.image.run(None, {"pixels": pixels.float().numpy()})[0]


def cache_key(encoder_id: str) -> str:
    """A file name from the encoder id (`open_clip/<model>/<weights>`) and the exporter's version."""
    return f"{encoder_id.replace('/', '_')}-torch{torch.__version__.split('+')[0]}"


def _exported(module: torch.nn.Module, sample: torch.Tensor, path: Path, axes: tuple[str, dict[int, str]]) -> Path:
    if path.is_file():
        return path
    name, dynamic = axes
    path.parent.mkdir(parents=True, exist_ok=True)
    log.info("exporting %s to ONNX (once for these weights)", path.name)
    for chatty in ("onnx_ir", "onnxscript", "torch.onnx", "torch.export"):  # INFO lines per initializer
        logging.getLogger(chatty).setLevel(logging.WARNING)
    shapes = {name: {axis: torch.export.Dim(label, min=1) for axis, label in dynamic.items()}}
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".partial")
    os.close(handle)
    try:
        with torch.no_grad():
            torch.onnx.export(module.eval(), (sample,), partial, input_names=[name], output_names=["vectors"],
                              dynamic_shapes=shapes, dynamo=True, external_data=False, verbose=False)
        os.replace(partial, path)
    except Exception as exc:
        raise EncoderLoadError(f"Could not export the CLIP towers to ONNX ({type(exc).__name__}: {exc}); "
                               "set CLIP_RUNTIME=torch.") from None
    finally:
        Path(partial).unlink(missing_ok=True)
    return path
