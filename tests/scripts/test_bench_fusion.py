"""scripts/bench_fusion.py: the fused ranking is w * cos(TIRG) + (1 - w) * cos(CLIP), one search over
concatenated vectors; w = 1 and w = 0 give each composer's own recall."""
import numpy as np
import torch
import torch.nn.functional as F

from tests.scripts.helpers import load_script
from tirg.evaluate import recall_at_k


def features(seed: int, queries: int = 60, gallery: int = 40, dim: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return (F.normalize(torch.randn(queries, dim, generator=generator), dim=1),
            F.normalize(torch.randn(gallery, dim, generator=generator), dim=1))


def test_fused_recall_is_the_weighted_sum_of_cosines_and_each_composer_at_the_ends():
    fusion = load_script("bench_fusion")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 40)
    split = {"tirg": features(1), "clip": features(2), "sources": rng.integers(0, 40, 60),
             "targets": labels[rng.integers(0, 40, 60)], "labels": labels}

    def alone(name):
        return recall_at_k(*split[name], split["sources"], split["targets"], labels, ks=(1, 5, 10, 50))

    assert fusion.fused_recall(split, 1.0) == alone("tirg")
    assert fusion.fused_recall(split, 0.0) == alone("clip")
    (tq, tg), (cq, cg) = split["tirg"], split["clip"]
    mixed_sims = 0.3 * tq @ tg.T + 0.7 * cq @ cg.T  # ranked as is: queries = the similarities, gallery = I
    expected = recall_at_k(mixed_sims, torch.eye(40), split["sources"], split["targets"], labels, ks=(1, 5, 10, 50))
    assert fusion.fused_recall(split, 0.3) == expected
    assert expected != alone("tirg") or expected != alone("clip")
