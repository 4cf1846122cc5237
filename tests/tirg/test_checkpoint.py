import numpy as np
import pytest
import torch
from PIL import Image

from tirg.checkpoint import load_model, round_weights, save_checkpoint
from tirg.inference import load_tirg
from tirg.models import TirgConfig, create_model
from tirg.text import Vocabulary


def test_a_checkpoint_loads_by_path_alone_with_its_vocabulary(tmp_path):
    torch.manual_seed(0)
    vocabulary = Vocabulary.build(["add red cube to top-left", "remove center cyan object"])
    model = create_model(TirgConfig(model="tirg", embed_dim=32, word_dim=16, lstm_dim=16, image_size=32),
                         vocabulary).eval()
    path = save_checkpoint(tmp_path / "m.pt", model, iteration=7)
    loaded = load_model(path)
    assert loaded.vocabulary.words == vocabulary.words and loaded.config == model.config
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.compose_img_text(images, ["add red cube to top-left"] * 2),
                                   model.compose_img_text(images, ["add red cube to top-left"] * 2))


def test_the_inference_wrapper_gives_unit_vectors_for_pil_images(tmp_path):
    model = create_model(TirgConfig(embed_dim=32, word_dim=16, lstm_dim=16, image_size=32),
                         Vocabulary.build(["make center red object blue"]))
    composer = load_tirg(save_checkpoint(tmp_path / "m.pt", model))
    images = [Image.new("RGB", (50, 40), color) for color in ("red", "blue")]
    gallery = composer.encode_image(images)
    queries = composer.compose(images, ["make center red object blue"] * 2)
    assert gallery.shape == queries.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(queries, axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError):
        composer.compose(images, ["one text"])


def test_other_files_are_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ValueError, match="tirg-checkpoint"):
        load_model(path)


def test_fp16_weights_halve_the_file_and_load_as_the_rounded_model(tmp_path):
    torch.manual_seed(0)
    model = create_model(TirgConfig(embed_dim=32, word_dim=16, lstm_dim=16, image_size=32),
                         Vocabulary.build(["make center red object blue"])).eval()
    full = save_checkpoint(tmp_path / "fp32.pt", model)
    half = save_checkpoint(tmp_path / "fp16.pt", model, weights_dtype=torch.float16)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded = load_model(half)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    rounded = round_weights(load_model(full), torch.float16)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = rounded.compose_img_text(images, ["make center red object blue"] * 2)
        torch.testing.assert_close(loaded.compose_img_text(images, ["make center red object blue"] * 2), expected,
                                   rtol=0, atol=0)
        assert not torch.equal(model.compose_img_text(images, ["make center red object blue"] * 2), expected)
