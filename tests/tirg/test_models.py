import pytest
import torch

from tirg.models import MODEL_NAMES, TirgConfig, create_model
from tirg.text import Vocabulary

VOCAB = Vocabulary.build(["add red cube to top-left", "make center gray object blue"])


def small_config(model: str) -> TirgConfig:
    return TirgConfig(model=model, embed_dim=32, word_dim=16, lstm_dim=16, image_size=32)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_composes_to_the_embedding_size(name):
    torch.manual_seed(0)
    model = create_model(small_config(name), VOCAB).eval()
    images = torch.randn(3, 3, 32, 32)
    texts = ["add red cube to top-left", "make center gray object blue", "unknown words"]
    with torch.no_grad():
        composed = model.compose_img_text(images, texts)
        targets = model.target_features(images)
        queries, normalized_targets = model.query_and_target(images, texts, images)
    assert composed.shape == targets.shape == (3, 32)
    torch.testing.assert_close(queries.norm(dim=1), torch.full((3,), 4.0))
    assert normalized_targets.shape == (3, 32)


def test_tirg_starts_with_the_papers_weights_and_composes_features_made_elsewhere():
    model = create_model(small_config("tirg"), VOCAB).eval()
    torch.testing.assert_close(model.a.detach(), torch.tensor([1.0, 10.0]))
    assert model.normalize.scale.requires_grad and float(model.normalize.scale.detach()) == 4.0
    with torch.no_grad():
        composed = model.compose_img_text_features(torch.randn(2, 32), torch.randn(2, 32))
    assert composed.shape == (2, 32)


def test_lastconv_composes_on_the_feature_map():
    model = create_model(small_config("tirg_lastconv"), VOCAB).eval()
    with torch.no_grad():
        feature_map = model.extract_img_feature(torch.randn(2, 3, 32, 32))
        assert feature_map.dim() == 4
        assert model.compose_img_text_features(feature_map, torch.randn(2, 32)).shape == (2, 32)


def test_text_changes_the_tirg_query_but_not_the_image_only_one():
    torch.manual_seed(0)
    images = torch.randn(2, 3, 32, 32)
    for name, should_change in (("tirg", True), ("image_only", False)):
        model = create_model(small_config(name), VOCAB).eval()
        with torch.no_grad():
            a = model.compose_img_text(images, ["add red cube to top-left"] * 2)
            b = model.compose_img_text(images, ["make center gray object blue"] * 2)
        assert (not torch.allclose(a, b)) == should_change


def test_unknown_model_names_are_refused():
    with pytest.raises(ValueError, match="unknown model"):
        create_model(small_config("nope"), VOCAB)


def test_the_pretrained_efficientnet_backbone_loads_offline_and_composes():
    from tirg.image import create_image_encoder

    pretrained = create_image_encoder("efficientnet_lite0", 32)
    random_init = create_image_encoder("efficientnet_lite0", 32, pretrained=False)
    first = next(pretrained.trunk.parameters())
    assert not torch.allclose(first, next(random_init.trunk.parameters()))
    config = TirgConfig(model="tirg", backbone="efficientnet_lite0", embed_dim=32, word_dim=16, lstm_dim=16)
    model = create_model(config, VOCAB).eval()
    with torch.no_grad():
        assert model.compose_img_text(torch.randn(2, 3, 64, 64), ["add red cube to top-left"] * 2).shape == (2, 32)
