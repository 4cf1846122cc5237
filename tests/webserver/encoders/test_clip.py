import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import ROOT, TINY_MODEL
from tests.images import sample_images
from webserver.encoders.clip import ClipEncoder, _hub_reachable, describe_weights
from webserver.errors import EncoderLoadError


def test_vectors_are_unit_length_with_the_model_dimension(encoder):
    images = [image for image, _ in sample_images(3)]
    image_vectors = encoder.encode_images(images)
    text_vectors = encoder.encode_texts(["a dress", "an ankle boot"])
    assert image_vectors.shape == (3, encoder.dimension) and text_vectors.shape == (2, encoder.dimension)
    np.testing.assert_allclose(np.linalg.norm(image_vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(text_vectors, axis=1), 1.0, atol=1e-5)


def test_batching_does_not_change_vectors(encoder):
    images = [image for image, _ in sample_images(20)]  # batch size 16: two batches
    together = encoder.encode_images(images)
    alone = np.stack([encoder.encode_images([image])[0] for image in images[:3]])
    np.testing.assert_allclose(together[:3], alone, atol=1e-5)
    assert not np.allclose(together[0], together[1])


def test_encoder_id_follows_the_weights_not_the_file_name(clip_checkpoint, tmp_path):
    copy = tmp_path / "renamed.pt"
    copy.write_bytes(clip_checkpoint.read_bytes())
    assert describe_weights(TINY_MODEL, str(copy)) == describe_weights(TINY_MODEL, str(clip_checkpoint))
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    assert describe_weights(TINY_MODEL, str(other)) != describe_weights(TINY_MODEL, str(clip_checkpoint))
    assert describe_weights("ViT-B-32", "openai") == "open_clip/ViT-B-32/openai"


@pytest.mark.parametrize("model, pretrained, words", [
    ("no-such-model", "x.pt", "CLIP_MODEL"),
    (TINY_MODEL, "/nonexistent/weights.pt", "no such checkpoint"),
    (TINY_MODEL, "", "CLIP_PRETRAINED is empty"),
])
def test_bad_model_settings_fail_with_a_message_naming_the_setting(model, pretrained, words):
    with pytest.raises(EncoderLoadError, match=words):
        ClipEncoder(model, pretrained, device="cpu")


@pytest.mark.skipif(_hub_reachable(), reason="the model hub is reachable: the tag would download")
def test_a_pretrained_tag_offline_fails_fast_naming_the_setting():
    with pytest.raises(EncoderLoadError, match="CLIP_PRETRAINED='openai'.*local checkpoint"):
        ClipEncoder("ViT-B-32", "openai", device="cpu")


def test_bf16_vectors_agree_with_fp32(clip_checkpoint, encoder):
    """The bf16 path, forced on any CPU (emulated, so slow, where the CPU lacks bf16)."""
    fast = ClipEncoder(TINY_MODEL, str(clip_checkpoint), device="cpu", precision="bf16", cpu_class="avx512_bf16")
    assert fast.dtype == torch.bfloat16 and next(fast.model.parameters()).dtype == torch.bfloat16
    images = [image for image, _ in sample_images(4)]
    low, full = fast.encode_images(images), encoder.encode_images(images)
    np.testing.assert_allclose(np.linalg.norm(low, axis=1), 1.0, atol=1e-5)
    assert np.min(np.sum(low * full, axis=1)) > 0.98
    assert fast.encoder_id == encoder.encoder_id  # same weights, same vector space


def test_bf16_vectors_of_real_images_and_captions_agree_with_fp32(tmp_path):
    """The shipped css-clip on Fashion-MNIST images and rendered scenes, and on their captions: what
    CLIP_PRECISION=auto computes on an AVX-512 BF16 or AMX CPU (forced here, emulated where the CPU lacks it)."""
    from PIL import Image

    from tirg.scenes.generate import generate

    generate(tmp_path, train_images=0, test_images=24, renderer="3d", image_size=64, seed=3, workers=1)
    scenes = sorted((tmp_path / "images").glob("*.png"))
    images = [image for image, _ in sample_images(24)] + [Image.open(path).convert("RGB") for path in scenes]
    texts = [f"a photo of a {label}" for _, label in sample_images(24)] + ["a large red cube at center"]
    shipped = str(ROOT / "models" / "css-clip.pt")
    full = ClipEncoder("css-clip", shipped, device="cpu", precision="fp32")
    low = ClipEncoder("css-clip", shipped, device="cpu", precision="bf16", cpu_class="avx512_bf16")
    assert low.dtype == torch.bfloat16 and low.encoder_id == full.encoder_id
    image_cosines = np.sum(low.encode_images(images) * full.encode_images(images), axis=1)
    text_cosines = np.sum(low.encode_texts(texts) * full.encode_texts(texts), axis=1)
    assert image_cosines.min() >= 0.99 and text_cosines.min() >= 0.99, (image_cosines.min(), text_cosines.min())


def test_bf16_on_a_cpu_without_it_runs_fp32_and_warns_with_the_cost(clip_checkpoint, caplog):
    with caplog.at_level(logging.WARNING):
        slow = ClipEncoder(TINY_MODEL, str(clip_checkpoint), device="cpu", precision="bf16", cpu_class="avx2")
    assert slow.dtype == torch.float32 and next(slow.model.parameters()).dtype == torch.float32
    assert "CLIP_PRECISION=bf16 ignored" in caplog.text and "10x slower" in caplog.text


@pytest.mark.parametrize("cpu_class, dtype", [("avx2", torch.float32), ("amx", torch.bfloat16)])
def test_auto_precision_follows_the_cpu_class(clip_checkpoint, cpu_class, dtype):
    chosen = ClipEncoder(TINY_MODEL, str(clip_checkpoint), device="cpu", precision="auto", cpu_class=cpu_class)
    assert chosen.dtype == dtype and chosen.precision.hardware == f"cpu/{cpu_class}"


def test_the_config_folder_is_registered_once_however_many_encoders_are_built(clip_checkpoint):
    from open_clip import factory

    from webserver.encoders.clip import MODEL_CONFIG_DIR

    for _ in range(2):
        ClipEncoder(TINY_MODEL, str(clip_checkpoint), device="cpu")
    assert [Path(p) for p in factory._MODEL_CONFIG_PATHS].count(MODEL_CONFIG_DIR) == 1


def test_a_pretrained_tag_loads_offline_from_the_local_cache(clip_checkpoint, encoder, tmp_path, monkeypatch):
    """Before, the hub was probed first, so weights already in the Hugging Face cache were refused offline."""
    import shutil

    import huggingface_hub.constants
    import open_clip.pretrained

    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, TINY_MODEL,
                        {"cached_test": {"hf_hub": "test-org/tiny-clip/"}})
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo = tmp_path / "hub" / "models--test-org--tiny-clip"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    shutil.copyfile(clip_checkpoint, snapshot / "open_clip_pytorch_model.bin")

    cached = ClipEncoder(TINY_MODEL, "cached-test", device="cpu")
    images = [image for image, _ in sample_images(2)]
    np.testing.assert_allclose(cached.encode_images(images), encoder.encode_images(images), atol=1e-5)
    with pytest.raises(EncoderLoadError, match="not in the local cache"):
        ClipEncoder(TINY_MODEL, "not-cached", device="cpu")


def captions(count: int) -> list[str]:
    """Short and long captions, some past the context (truncated by the tokenizer)."""
    rng = np.random.default_rng(0)
    words = ("a red dress with long sleeves", "small blue metal sphere", "shoe", "bag on the left of the cube",
             "make the large cylinder green", "t-shirt")
    return [" and ".join(rng.choice(words, size=int(rng.integers(1, 25)))) for _ in range(count)]


@pytest.mark.parametrize("weights", ["tiny", "shipped css-clip"])
def test_text_over_the_real_length_equals_the_full_context(clip_checkpoint, weights):
    """The causal text tower pools at the end-of-text token: running only the positions up to it gives
    the full context's vector (before: every caption ran all 77 positions)."""
    from webserver.encoders.short_context import short_context_encode

    model, pretrained = (TINY_MODEL, str(clip_checkpoint)) if weights == "tiny" else ("css-clip", "models/css-clip.pt")
    encoder = ClipEncoder(model, pretrained, device="cpu", precision="fp32")
    short_encode = short_context_encode(encoder.model)
    assert short_encode is not None
    texts = [*captions(300), "shoe"]
    tokens = encoder.tokenizer(texts)
    assert int(tokens.argmax(dim=-1).max()) == tokens.shape[1] - 1  # one caption fills the whole context
    with torch.inference_mode():
        full = encoder.model.encode_text(tokens, normalize=True).numpy()
        one = short_encode(encoder.tokenizer(["shoe"])).numpy()  # 3 positions instead of 77
    assert (np.sum(full * encoder.encode_texts(texts), axis=1) >= 0.99999).all()
    assert float(one[0] @ full[-1]) >= 0.99999
