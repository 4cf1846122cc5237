import logging

import numpy as np
import pytest
import torch

from tests.conftest import TINY_MODEL
from tests.images import sample_images
from webserver.encoders.clip import ClipEncoder
from webserver.errors import EncoderLoadError

CAPTIONS = ["x", "a red dress with long sleeves", "make bottom-right gray object purple",
            "a photo of a t-shirt/top " * 20,  # past the 77-token context: cut like the torch tower cuts it
            "white sneakers", "add red cube to top-left", "remove bottom-center cyan object"] * 30


@pytest.fixture(scope="module")
def torch_encoder(clip_checkpoint):
    return ClipEncoder(TINY_MODEL, str(clip_checkpoint), device="cpu", batch_size=16, runtime="torch")


def test_the_default_encoder_runs_onnxruntime_where_fp32_runs_on_a_cpu(encoder, torch_encoder):
    assert encoder.runtime == "onnxruntime" and torch_encoder.runtime == "torch"
    assert encoder.encoder_id == torch_encoder.encoder_id and encoder.dimension == torch_encoder.dimension


def test_onnx_text_vectors_equal_torch_ones_over_any_length_and_batch(encoder, torch_encoder):
    ours, theirs = encoder.encode_texts(CAPTIONS), torch_encoder.encode_texts(CAPTIONS)
    assert ours.shape == theirs.shape == (len(CAPTIONS), encoder.dimension)
    assert np.sum(ours * theirs, axis=1).min() >= 0.99999
    for caption in CAPTIONS[:7]:  # alone, each over its own length
        assert float(encoder.encode_texts([caption])[0] @ theirs[CAPTIONS.index(caption)]) >= 0.99999


def test_onnx_image_vectors_equal_torch_ones(encoder, torch_encoder):
    images = [image for image, _ in sample_images(40)]  # batch size 16: batches of 16, 16 and 8
    ours, theirs = encoder.encode_images(images), torch_encoder.encode_images(images)
    assert np.sum(ours * theirs, axis=1).min() >= 0.99999
    assert float(encoder.encode_images(images[:1])[0] @ theirs[0]) >= 0.99999
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_the_export_is_made_once_and_then_read_from_the_cache(clip_checkpoint, tmp_path, monkeypatch):
    ClipEncoder(TINY_MODEL, str(clip_checkpoint), device="cpu", runtime="onnx", onnx_cache_dir=tmp_path)
    exported = sorted(path.name for path in tmp_path.iterdir())
    assert len(exported) == 2 and all(name.endswith(".onnx") for name in exported)

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(torch.onnx, "export", no_export)
    again = ClipEncoder(TINY_MODEL, str(clip_checkpoint), device="cpu", runtime="onnx", onnx_cache_dir=tmp_path)
    assert again.runtime == "onnxruntime" and sorted(path.name for path in tmp_path.iterdir()) == exported


def test_a_cached_file_cut_short_is_exported_again(clip_checkpoint, tmp_path, caplog, torch_encoder):
    ClipEncoder(TINY_MODEL, str(clip_checkpoint), device="cpu", runtime="onnx", onnx_cache_dir=tmp_path)
    for path in tmp_path.glob("*.onnx"):
        path.write_bytes(path.read_bytes()[:1000])
    with caplog.at_level(logging.WARNING):
        again = ClipEncoder(TINY_MODEL, str(clip_checkpoint), device="cpu", runtime="onnx", onnx_cache_dir=tmp_path)
    assert "exporting it again" in caplog.text and again.runtime == "onnxruntime"
    assert float(again.encode_texts(["a red dress"])[0] @ torch_encoder.encode_texts(["a red dress"])[0]) >= 0.99999


def test_a_failed_export_falls_back_to_torch_under_auto_and_is_an_error_under_onnx(
        clip_checkpoint, tmp_path, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with caplog.at_level(logging.WARNING):
        fallback = ClipEncoder(TINY_MODEL, str(clip_checkpoint), device="cpu", runtime="auto",
                               onnx_cache_dir=tmp_path)
    assert fallback.runtime == "torch" and "unsupported operator" in caplog.text
    with pytest.raises(EncoderLoadError, match=r"CLIP_RUNTIME=onnx: Could not export .*unsupported operator.*"
                                               r"Set CLIP_RUNTIME=torch"):
        ClipEncoder(TINY_MODEL, str(clip_checkpoint), device="cpu", runtime="onnx", onnx_cache_dir=tmp_path)
    assert not list(tmp_path.iterdir())  # no half-written file left behind


def test_a_cache_folder_that_cannot_be_written_falls_back_to_torch_under_auto(clip_checkpoint, tmp_path, caplog):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with caplog.at_level(logging.WARNING):
        fallback = ClipEncoder(TINY_MODEL, str(clip_checkpoint), device="cpu", runtime="auto",
                               onnx_cache_dir=not_a_folder / "onnx")
    assert fallback.runtime == "torch" and "ONNX_CACHE" in caplog.text
    with pytest.raises(EncoderLoadError, match="CLIP_RUNTIME=onnx: ONNX_CACHE: cannot write"):
        ClipEncoder(TINY_MODEL, str(clip_checkpoint), device="cpu", runtime="onnx",
                    onnx_cache_dir=not_a_folder / "onnx")


def test_bf16_keeps_torch_under_auto_and_refuses_onnx(clip_checkpoint, tmp_path):
    bf16 = ClipEncoder(TINY_MODEL, str(clip_checkpoint), device="cpu", precision="bf16", cpu_class="avx512_bf16",
                       runtime="auto", onnx_cache_dir=tmp_path)
    assert bf16.runtime == "torch" and not list(tmp_path.iterdir())
    with pytest.raises(EncoderLoadError, match="CLIP_RUNTIME=onnx runs fp32"):
        ClipEncoder(TINY_MODEL, str(clip_checkpoint), device="cpu", precision="bf16", cpu_class="avx512_bf16",
                    runtime="onnx", onnx_cache_dir=tmp_path)


def tirg_checkpoint_of(model_name: str, folder):
    from tirg.checkpoint import save_checkpoint
    from tirg.models import TirgConfig, create_model
    from tirg.text import Vocabulary

    torch.manual_seed(0)
    config = TirgConfig(model=model_name, embed_dim=32, word_dim=16, lstm_dim=16, image_size=32)
    model = create_model(config, Vocabulary.build(["make top-left red object blue", "add red cube to center"]))
    return save_checkpoint(folder / f"{model_name}.pt", model)


@pytest.mark.parametrize("model_name", ["tirg", "tirg_lastconv"])  # lastconv: query and gallery features differ
def test_tirg_on_onnxruntime_gives_torchs_gallery_and_composed_vectors(model_name, tmp_path):
    from webserver.encoders.tirg import TirgEncoder

    checkpoint = tirg_checkpoint_of(model_name, tmp_path)
    ours = TirgEncoder(checkpoint, device="cpu", batch_size=16, runtime="auto", onnx_cache_dir=tmp_path / "cache")
    theirs = TirgEncoder(checkpoint, device="cpu", batch_size=16, runtime="torch")
    assert (ours.runtime, theirs.runtime) == ("onnxruntime", "torch") and ours.encoder_id == theirs.encoder_id
    images = [image for image, _ in sample_images(20)]
    assert np.sum(ours.encode_images(images) * theirs.encode_images(images), axis=1).min() >= 0.99999
    changes = ["make top-left red object blue", "add red cube to center", "remove it"] * 2
    composed, expected = ours.compose(images[:6], changes), theirs.compose(images[:6], changes)
    assert composed.dtype == np.float32 and np.sum(composed * expected, axis=1).min() >= 0.99999
    assert len(list((tmp_path / "cache").glob("*.onnx"))) == (1 if model_name == "tirg" else 2)
