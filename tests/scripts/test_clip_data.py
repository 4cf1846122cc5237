"""The demo CLIP's training data: the grouped contrastive loss, Fashion-MNIST with captions, mixed epochs."""
import random

import pytest
import torch
import torch.nn.functional as F

from tests.images import FASHION_MNIST
from tests.scripts.helpers import load_script

clip_data = load_script("_clip_data")


def features(count: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(count, 16, generator=torch.Generator().manual_seed(seed)), dim=1)


def test_with_one_item_per_group_the_loss_is_open_clips():
    from open_clip.loss import ClipLoss

    images, texts, scale = features(12, 0), features(12, 1), torch.tensor(14.0)
    grouped = clip_data.grouped_clip_loss(images, texts, scale, torch.arange(12))
    assert torch.allclose(grouped, ClipLoss()(images, texts, scale))


def test_the_loss_prefers_one_direction_per_class_where_open_clips_prefers_one_per_item():
    """Two dresses and two sneakers, captions in two phrasings each. open_clip's loss is lower when each
    dress sits apart with its own phrasing (it treats the other dress as a negative); the grouped loss is
    lower when both dresses and both phrasings share one direction, the class's."""
    from open_clip.loss import ClipLoss

    basis, groups, scale = torch.eye(16), torch.tensor([-4, -4, -8, -8]), torch.tensor(50.0)
    by_class = basis[[0, 0, 2, 2]]
    by_item = basis[[0, 1, 2, 3]]
    grouped = {name: clip_data.grouped_clip_loss(x, x, scale, groups) for name, x in
               (("class", by_class), ("item", by_item))}
    plain = {name: ClipLoss()(x, x, scale) for name, x in (("class", by_class), ("item", by_item))}
    assert grouped["class"] < grouped["item"] and plain["item"] < plain["class"]


def test_an_epoch_mixes_all_of_the_first_part_with_a_draw_from_the_second():
    order = clip_data.epoch_order([10, 100], [10, 20], random.Random(0))
    assert len(order) == 30 and set(range(10)) <= set(order)
    assert len([i for i in order if i >= 10]) == 20 and order != sorted(order)


@pytest.mark.skipif(not FASHION_MNIST.exists(), reason="apt-get install dataset-fashion-mnist")
def test_fashion_mnist_items_are_rgb_at_the_model_size_with_class_captions():
    items = clip_data.fashion_items("train", 64, limit=50)
    assert items.images.shape == (50, 3, 64, 64) and items.images.dtype == torch.uint8
    assert all(items.groups < 0)
    name = clip_data.LABELS[-1 - int(items.groups[0])]
    assert clip_data.class_query(name) in items.captions[0]
    assert all(any(c.endswith(phrase) for phrase in clip_data.FASHION_PHRASES[name]) for c in items.captions[0])
