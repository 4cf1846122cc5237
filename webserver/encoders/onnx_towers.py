"""Model towers run by ONNX Runtime instead of torch eager (CLIP_RUNTIME, TIRG_RUNTIME).

Why: on a CPU in fp32, torch eager's few-row matmuls stream a query's weights at ~3.6 GB/s where ONNX
Runtime's kernels reach ~10 GB/s, and a small model's pass is mostly per-operator overhead, which ONNX
Runtime's fused graph avoids. Measured on the 2-core AVX2 EPYC (docs/benchmarks.md, "ONNX Runtime"):
ViT-B-32's text tower over 8 tokens 3.9x faster, an image 1.8x, with cosine >= 0.99999 to torch's
vectors. Where bf16 runs (an AVX-512 BF16 CPU, CUDA) torch stays.

The towers are exported once per weights (torch.onnx's dynamo exporter: dynamic batch, and the text
length dynamic too, since text runs over the real length: short_context) into a cache folder, keyed by the
encoder id, the torch version and the tower; a file is written beside its final name and renamed, so two
processes starting at once never read half a file.
"""
from __future__ import annotations

import inspect
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from webserver.encoders.short_context import ShortContextText, real_length
from webserver.errors import EncoderLoadError

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "torch", "onnx")
T = TypeVar("T")


def onnx_runtime_installed() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def choose_runtime(setting: str, requested: str, precision: str, device: torch.device,
                   exportable: str | None = None) -> str:
    """torch or onnx, for the encoder that `setting` (CLIP_RUNTIME, TIRG_RUNTIME) configures. auto: onnx
    for fp32 on a CPU where onnxruntime is installed and the model can be exported (`exportable` says why
    not); torch otherwise."""
    if requested not in RUNTIMES:
        raise EncoderLoadError(f"{setting}={requested!r}: choose one of {', '.join(RUNTIMES)}.")
    fits = device.type == "cpu" and precision == "fp32" and exportable is None
    if requested == "auto":
        chosen = "onnx" if fits and onnx_runtime_installed() else "torch"
        log.info("%s=auto: running %s (%s on %s)", setting, chosen, precision, device.type)
        return chosen
    if requested == "onnx" and not fits:
        raise EncoderLoadError(
            f"{setting}=onnx runs fp32 on a CPU; this encoder runs {precision} on {device.type}"
            f"{'' if exportable is None else ', ' + exportable}. Set {setting}=auto or torch.")
    if requested == "onnx" and not onnx_runtime_installed():
        raise EncoderLoadError(f"{setting}=onnx needs the onnxruntime package (requirements.txt).")
    return requested


def built_or_torch(setting: str, requested: str, runtime: str, build: Callable[[Path], T],
                   cache_dir: Path | None) -> T | None:
    """`build(cache folder)` where `runtime` is onnx; None (torch runs) where it is not, or where the export
    failed under auto (logged). The folder defaults to a temporary one, exported again by the next process."""
    if runtime != "onnx":
        return None
    try:
        return build(cache_dir or Path(tempfile.mkdtemp(prefix="onnx-")))
    except EncoderLoadError as exc:
        if requested == "onnx":
            raise EncoderLoadError(f"{setting}=onnx: {exc.detail} Set {setting}=torch (or auto).") from None
        log.warning("%s=auto: running torch: %s", setting, exc.detail)
        return None


def onnx_session(module: torch.nn.Module, sample: torch.Tensor, path: Path, dynamic_axes: dict[int, str],
                 threads: int | None = None):
    """An ONNX Runtime session of `module` (one tensor in, one out; the input named as forward's argument),
    exported to `path` first unless a file is already there. A cached file ONNX Runtime cannot read (cut
    short, or written by an exporter it does not know) is exported again, once."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.log_severity_level = 3  # errors only: its warnings about unused initializers are noise here
    # Its threads sleep between runs instead of spinning: they share the cores with torch's (TIRG's text
    # LSTM runs right after its image features: a composed query 16.4 -> 14.3 ms) and with the server's
    # Python threads; a ViT-B-32 tower alone times the same either way (docs/benchmarks.md).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    cached = path.is_file()
    try:
        return ort.InferenceSession(str(_exported(module, sample, path, dynamic_axes)), options,
                                    providers=["CPUExecutionProvider"])
    except EncoderLoadError:
        raise
    except Exception as exc:  # onnxruntime raises its own Fail / InvalidGraph / InvalidProtobuf
        if not cached:
            raise EncoderLoadError(f"ONNX Runtime cannot load {path} ({type(exc).__name__}: {exc}).") from None
        log.warning("the cached %s could not be loaded (%s): exporting it again", path, type(exc).__name__)
        path.unlink(missing_ok=True)
        return onnx_session(module, sample, path, dynamic_axes, threads)


class ImageTower(torch.nn.Module):
    def __init__(self, model: Any):  # an open_clip model
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels, normalize=True)


class OnnxTowers:
    """The CLIP text tower (over the real length) and image tower as ONNX Runtime sessions."""

    def __init__(self, model: Any, text_tower: ShortContextText, *, cache_dir: Path, key: str):
        size = model.visual.image_size
        size = size if isinstance(size, tuple) else (size, size)
        self._text_tower = text_tower
        self.text = onnx_session(text_tower, torch.ones((2, 4), dtype=torch.long), cache_dir / f"{key}-text.onnx",
                                 {0: "batch", 1: "length"})
        self.image = onnx_session(ImageTower(model), torch.zeros((2, 3, *size)), cache_dir / f"{key}-image.onnx",
                                  {0: "batch"})

    def encode_tokens(self, tokens: torch.Tensor) -> np.ndarray:
        cut = tokens[:, :real_length(tokens, self._text_tower)]
        return self.text.run(None, {"tokens": cut.numpy().astype(np.int64)})[0]

    def encode_pixels(self, pixels: torch.Tensor) -> np.ndarray:
        return self.image.run(None, {"pixels": pixels.float().numpy()})[0]


class ModelMethod(torch.nn.Module):
    """One method of a model as a module of its own, to export it alone."""

    def __init__(self, model: Any, method: str):
        super().__init__()
        self.model, self.method = model, method

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return getattr(self.model, self.method)(pixels)


class OnnxImageFeatures:
    """A TIRG model's image features as ONNX Runtime sessions: `query`, what composition starts from
    (extract_img_feature); `gallery`, what a collection stores once normalized (target_features). One
    session where the model does not tell them apart (TIRG; TIRG on the last conv map does)."""

    def __init__(self, model: Any, *, cache_dir: Path, key: str):
        from tirg.models import ComposeModel

        size = model.config.image_size
        sample = torch.zeros((2, 3, size, size))
        self._query = onnx_session(ModelMethod(model, "extract_img_feature"), sample, cache_dir / f"{key}-query.onnx",
                                   {0: "batch"})
        same = type(model).target_features is ComposeModel.target_features
        self._gallery = self._query if same else onnx_session(
            ModelMethod(model, "target_features"), sample, cache_dir / f"{key}-gallery.onnx", {0: "batch"})

    def query(self, pixels: torch.Tensor) -> np.ndarray:
        return self._query.run(None, {"pixels": pixels.float().numpy()})[0]

    def gallery(self, pixels: torch.Tensor) -> np.ndarray:
        return self._gallery.run(None, {"pixels": pixels.float().numpy()})[0]


def cache_key(encoder_id: str) -> str:
    """A file name from the encoder id (`open_clip/<model>/<weights>`, `tirg/<model>/<weights>`) and the
    exporter's version."""
    return f"{encoder_id.replace('/', '_')}-torch{torch.__version__.split('+')[0]}"


def _exported(module: torch.nn.Module, sample: torch.Tensor, path: Path, dynamic: dict[int, str]) -> Path:
    if path.is_file():
        return path
    name = next(iter(inspect.signature(module.forward).parameters))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, partial = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".partial")
    except OSError as exc:
        raise EncoderLoadError(f"ONNX_CACHE: cannot write the export into {path.parent} ({exc.strerror}).") from None
    os.close(handle)
    log.info("exporting %s to ONNX (once for these weights)", path.name)
    for chatty in ("onnx_ir", "onnxscript", "torch.onnx", "torch.export"):  # INFO lines per initializer
        logging.getLogger(chatty).setLevel(logging.WARNING)
    shapes = {name: {axis: torch.export.Dim(label, min=1) for axis, label in dynamic.items()}}
    try:
        with torch.no_grad():
            torch.onnx.export(module.eval(), (sample,), partial, input_names=[name], output_names=["vectors"],
                              dynamic_shapes=shapes, dynamo=True, external_data=False, verbose=False)
        os.replace(partial, path)
    except Exception as exc:
        raise EncoderLoadError(f"Could not export {path.name} to ONNX ({type(exc).__name__}: {exc}).") from None
    finally:
        Path(partial).unlink(missing_ok=True)
    return path
