"""Composers over a frozen CLIP space: the zero-shot weighted sum and the trained combiner."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tirg.clip_features import SplitFeatures
from tirg.combiner import ClipCombiner, CombinerConfig, load_combiner, save_combiner, weighted_sum
from tirg.combiner_train import CombinerOptions, gallery_loss, score, train_combiner


def test_the_weighted_sum_is_a_unit_vector_between_the_image_and_the_text():
    image, text = torch.randn(5, 8) * 3, torch.randn(5, 8)
    for weight in (0.0, 0.3, 1.0):
        composed = weighted_sum(image, text, weight)
        assert composed.shape == (5, 8) and torch.allclose(composed.norm(dim=1), torch.ones(5), atol=1e-6)
    assert torch.allclose(weighted_sum(image, text, 0.0), F.normalize(image, dim=1), atol=1e-6)
    assert torch.allclose(weighted_sum(image, text, 1.0), F.normalize(text, dim=1), atol=1e-6)


def test_the_combiner_gives_unit_vectors_and_survives_a_round_trip(tmp_path):
    torch.manual_seed(0)
    model = ClipCombiner(CombinerConfig(dimension=8, hidden=16, clip_model="tiny", clip_weights="sha256:ab")).eval()
    image, text = torch.randn(4, 8), torch.randn(4, 8)
    composed = model(image, text)
    assert composed.shape == (4, 8) and torch.allclose(composed.norm(dim=1), torch.ones(4), atol=1e-6)
    loaded = load_combiner(save_combiner(tmp_path / "c.pt", model, note="x"))
    assert loaded.config == model.config and torch.allclose(loaded(image, text), composed.detach(), atol=1e-6)
    torch.save({"format": "other"}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="clip-combiner"):
        load_combiner(tmp_path / "bad.pt")


def synthetic_split(seed: int, images: int = 200, queries: int = 400, texts: int = 6, dim: int = 16) -> SplitFeatures:
    """Each text moves an image along a direction of its own (not the text vector's), and each query's
    target is its moved image (plus noise) in the gallery: a sum of the two unit vectors cannot follow."""
    rng = np.random.default_rng(seed)
    unit = lambda a: F.normalize(torch.tensor(a, dtype=torch.float32), dim=1)  # noqa: E731
    base = unit(rng.normal(size=(images, dim)))
    shared = np.random.default_rng(99)  # the texts and what they do are the same in every split
    text_vectors = unit(shared.normal(size=(texts, dim)))
    moves = torch.tensor(shared.normal(size=(texts, dim)), dtype=torch.float32)
    sources = rng.integers(0, images, size=queries)
    text_index = rng.integers(0, texts, size=queries)
    moved = F.normalize(base[sources] + moves[text_index] + 0.1 * torch.randn(queries, dim), dim=1)
    gallery = torch.cat([base, moved])
    return SplitFeatures(gallery, text_vectors, np.arange(len(gallery)), sources, text_index,
                         images + np.arange(queries))


def test_training_learns_what_the_sum_cannot():
    train, test = synthetic_split(0), synthetic_split(1)
    config = CombinerConfig(dimension=16, hidden=64)
    model, history = train_combiner(train, config, CombinerOptions(steps=300, batch_size=128, learning_rate=3e-3,
                                                                   eval_every=150),
                                    evaluate=lambda m: score(m, test, ks=(1, 10)), log=lambda _: None)
    best_sum = max(score(lambda i, t, w=w: weighted_sum(i, t, w), test, ks=(1, 10))["R@10"] for w in (0.1, 0.3, 0.5))
    trained = score(model, test, ks=(1, 10))
    assert [entry["step"] for entry in history] == [150, 300]
    assert trained["R@10"] > best_sum + 40, (trained, best_sum)


def test_the_loss_never_counts_the_querys_own_image():
    split = synthetic_split(0, images=20)
    split.targets = split.sources.copy()  # the only right answer would be the source itself
    model = ClipCombiner(CombinerConfig(dimension=16, hidden=8))
    assert torch.isinf(gallery_loss(model, split, np.arange(8))).item()
