import numpy as np
import torch

from tirg.evaluate import recall_at_k


def test_recall_leaves_out_each_querys_own_image_only_when_it_is_in_the_gallery():
    gallery = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]]), dim=1)
    queries = gallery[:2].clone()
    labels = np.array([0, 1, 2])
    text_to_image = recall_at_k(queries, gallery, None, labels[:2], labels, ks=(1, 2))
    composed = recall_at_k(queries, gallery, np.array([0, 1]), labels[:2], labels, ks=(1, 2))
    assert text_to_image == {"R@1": 100.0, "R@2": 100.0}
    assert composed == {"R@1": 0.0, "R@2": 0.0}  # the only image of the target label is the query's own
