"""TIRG and the trained combiner in one vector: its inner products are the weighted sum of the two models'
cosines, so one search over a fused collection ranks by the fusion."""
import numpy as np
import pytest

from tests.conftest import TINY_MODEL
from tests.images import sample_images
from tests.webserver.encoders.test_clip_compose import make_combiner
from tirg.combiner import file_weights_id
from webserver.encoders.base import FUSED, kind_of
from webserver.encoders.clip import ClipEncoder
from webserver.encoders.fused import FusedEncoder
from webserver.errors import EncoderLoadError, InvalidInput

CHANGES = ["make top-left red object blue", "add red cube to center", "remove bottom-center cyan object"]


@pytest.fixture(scope="module")
def clip_with_combiner(clip_checkpoint, encoder, tmp_path_factory):
    path = make_combiner(tmp_path_factory.mktemp("combiner") / "c.pt", encoder.dimension,
                         file_weights_id(clip_checkpoint))
    return ClipEncoder(TINY_MODEL, str(clip_checkpoint), device="cpu", combiner_checkpoint=path)


def test_fused_inner_products_are_the_weighted_sum_of_both_models_cosines(tirg_encoder, clip_with_combiner):
    fused = FusedEncoder(tirg_encoder, clip_with_combiner, 0.3)
    images = [image for image, _ in sample_images(6)]
    gallery, queries = fused.encode_images(images), fused.compose(images[:3], CHANGES)
    assert gallery.shape == (6, tirg_encoder.dimension + clip_with_combiner.dimension) == (6, fused.dimension)
    assert gallery.dtype == queries.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(gallery, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(queries, axis=1), 1, atol=1e-5)
    tirg_scores = tirg_encoder.compose(images[:3], CHANGES) @ tirg_encoder.encode_images(images).T
    clip = clip_with_combiner
    clip_scores = clip.compose(images[:3], CHANGES, "trained") @ clip.encode_images(images).T
    np.testing.assert_allclose(queries @ gallery.T, 0.3 * tirg_scores + 0.7 * clip_scores, atol=1e-5)
    # the bulk path (preprocess in reader threads, then encode) gives the same vectors
    np.testing.assert_allclose(fused.encode_pixels(fused.preprocess_images(images)), gallery, atol=1e-5)


def test_the_fused_id_names_both_models_the_combiner_and_the_weight(tirg_encoder, clip_with_combiner):
    fused = FusedEncoder(tirg_encoder, clip_with_combiner, 0.5)
    assert kind_of(fused.encoder_id) == fused.kind == FUSED
    assert tirg_encoder.encoder_id in fused.encoder_id and clip_with_combiner.encoder_id in fused.encoder_id
    assert f"combiner-{clip_with_combiner.composers.combiner_id}" in fused.encoder_id
    assert FusedEncoder(tirg_encoder, clip_with_combiner, 0.4).encoder_id != fused.encoder_id
    assert fused.modes == {"image", "composed"}


def test_a_fused_encoder_refuses_text_a_composer_and_a_clip_without_combiner(tirg_encoder, clip_with_combiner,
                                                                              encoder):
    fused = FusedEncoder(tirg_encoder, clip_with_combiner, 0.5)
    with pytest.raises(InvalidInput, match="fused"):
        fused.encode_texts(["a red cube"])
    with pytest.raises(InvalidInput, match="composer"):
        fused.compose([sample_images(1)[0][0]], CHANGES[:1], "sum")
    with pytest.raises(EncoderLoadError, match="CLIP_COMBINER_CHECKPOINT"):
        FusedEncoder(tirg_encoder, encoder, 0.5)
    with pytest.raises(EncoderLoadError, match="between 0 and 1"):
        FusedEncoder(tirg_encoder, clip_with_combiner, 1.0)
