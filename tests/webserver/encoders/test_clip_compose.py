"""A CLIP encoder answers composed queries in its own space: the zero-shot sum, or a combiner trained for
its very weights (one made for other weights is refused at load)."""
import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import TINY_MODEL
from tirg.combiner import ClipCombiner, CombinerConfig, file_weights_id, save_combiner, weighted_sum
from webserver.encoders.clip import ClipEncoder
from webserver.errors import EncoderLoadError, InvalidInput

TEXTS = ["make top-left red object blue", "add red cube to center"]


def images():
    return [Image.new("RGB", (40, 40), color) for color in ("red", "blue")]


def make_combiner(path, dimension: int, weights: str, model: str = TINY_MODEL):
    torch.manual_seed(0)
    config = CombinerConfig(dimension=dimension, hidden=32, clip_model=model, clip_weights=weights)
    return save_combiner(path, ClipCombiner(config))


def test_the_sum_composes_the_encoders_own_vectors(encoder):
    assert "composed" in encoder.modes and encoder.composer_for(None) == "sum"
    composed = encoder.compose(images(), TEXTS)
    expected = weighted_sum(torch.from_numpy(encoder.encode_images(images())),
                            torch.from_numpy(encoder.encode_texts(TEXTS)), encoder.composers.sum_text_weight)
    assert composed.shape == (2, encoder.dimension) and composed.dtype == np.float32
    assert np.allclose(composed, expected.numpy(), atol=1e-5)
    assert np.allclose(np.linalg.norm(composed, axis=1), 1.0, atol=1e-5)
    with pytest.raises(InvalidInput, match="CLIP_COMBINER_CHECKPOINT"):
        encoder.composer_for("trained")


def test_a_combiner_for_these_weights_is_the_default_and_the_sum_stays_at_hand(clip_checkpoint, encoder, tmp_path):
    path = make_combiner(tmp_path / "c.pt", encoder.dimension, file_weights_id(clip_checkpoint))
    combined = ClipEncoder(TINY_MODEL, str(clip_checkpoint), device="cpu", combiner_checkpoint=path)
    assert combined.composer_for(None) == "trained" and combined.composer_for("sum") == "sum"
    trained, summed = combined.compose(images(), TEXTS), combined.compose(images(), TEXTS, "sum")
    assert np.allclose(summed, encoder.compose(images(), TEXTS), atol=1e-5)
    expected = combined.composers.combiner(torch.from_numpy(encoder.encode_images(images())),
                                           torch.from_numpy(encoder.encode_texts(TEXTS))).detach().numpy()
    assert np.allclose(trained, expected, atol=1e-5) and not np.allclose(trained, summed, atol=1e-3)


def test_a_combiner_made_for_other_clip_weights_is_refused_at_load(clip_checkpoint, encoder, tmp_path):
    other = make_combiner(tmp_path / "other.pt", encoder.dimension, "sha256:" + "0" * 64)
    with pytest.raises(EncoderLoadError, match="trained on the features of CLIP tiny-clip with weights sha256:000"):
        ClipEncoder(TINY_MODEL, str(clip_checkpoint), device="cpu", combiner_checkpoint=other)
    with pytest.raises(EncoderLoadError, match="no such file"):
        ClipEncoder(TINY_MODEL, str(clip_checkpoint), device="cpu", combiner_checkpoint=tmp_path / "absent.pt")
    with pytest.raises(EncoderLoadError, match="CLIP_COMPOSER=trained needs"):
        ClipEncoder(TINY_MODEL, str(clip_checkpoint), device="cpu", composer="trained")
