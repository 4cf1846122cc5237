"""Training losses of the paper, written with autograd (no hand-made backward pass).

Both take normalized composed queries q [N, d] and their targets t [N, d], where (q_i, t_i) match.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def batch_based_classification(queries: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the batch: query i should be closest to target i among all targets."""
    logits = queries @ targets.t()
    return F.cross_entropy(logits, torch.arange(len(queries), device=queries.device))


def soft_triplet(queries: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Soft triplet loss log(1 + exp(d(a, p) - d(a, n))) with squared Euclidean distances.

    As in the reference, anchors are all 2N features (queries and targets); each one's positive is its
    pair, and its negatives are every feature of another pair. The reference samples 3 negatives per
    anchor; here every negative is used and averaged, which has the same expectation and no sampling noise.
    """
    features = torch.cat([queries, targets])
    labels = torch.arange(len(queries), device=queries.device).repeat(2)
    squared_norms = (features * features).sum(dim=1)
    distances = squared_norms[:, None] + squared_norms[None, :] - 2 * features @ features.t()
    n = len(queries)
    pair = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(queries.device)
    positive = distances[torch.arange(2 * n, device=queries.device), pair]
    negative_mask = labels[:, None] != labels[None, :]
    margins = positive[:, None] - distances
    return F.softplus(margins[negative_mask]).mean()


LOSSES = {"soft_triplet": soft_triplet, "batch_based_classification": batch_based_classification}
