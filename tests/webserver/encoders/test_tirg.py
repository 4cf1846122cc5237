import numpy as np
import pytest

from tests.images import sample_images
from tirg.checkpoint import load_model, save_checkpoint
from webserver.encoders.tirg import TirgEncoder
from webserver.errors import EncoderLoadError


def test_vectors_are_unit_length_and_batching_changes_nothing(tirg_checkpoint):
    encoder = TirgEncoder(tirg_checkpoint, device="cpu", batch_size=2)
    images = [image for image, _ in sample_images(5)]
    together = encoder.encode_images(images)
    assert together.shape == (5, encoder.dimension) and together.dtype == np.float32
    assert np.allclose(np.linalg.norm(together, axis=1), 1, atol=1e-5)
    assert np.allclose(together[:1], encoder.encode_images(images[:1]), atol=1e-5)
    queries = encoder.compose(images[:2], ["make top-left red object blue", "add red cube to center"])
    assert queries.shape == (2, encoder.dimension)
    assert np.allclose(np.linalg.norm(queries, axis=1), 1, atol=1e-5)


def test_the_id_follows_the_weights_not_the_file(tirg_checkpoint, tmp_path):
    resaved = save_checkpoint(tmp_path / "exported.pt", load_model(tirg_checkpoint), iteration=123)
    first, second = TirgEncoder(tirg_checkpoint, device="cpu"), TirgEncoder(resaved, device="cpu")
    assert first.encoder_id == second.encoder_id and first.encoder_id.startswith("tirg/tirg/weights-")

    changed = load_model(tirg_checkpoint)
    changed.normalize.scale.data += 1
    assert TirgEncoder(save_checkpoint(tmp_path / "changed.pt", changed), device="cpu").encoder_id != first.encoder_id


@pytest.mark.parametrize("write, words", [(None, "no such file"), (b"not a checkpoint", "could not be loaded")])
def test_a_bad_checkpoint_setting_names_the_setting(tmp_path, write, words):
    path = tmp_path / "tirg.pt"
    if write is not None:
        path.write_bytes(write)
    with pytest.raises(EncoderLoadError) as error:
        TirgEncoder(path, device="cpu")
    assert "TIRG_CHECKPOINT" in error.value.detail and words in error.value.detail
