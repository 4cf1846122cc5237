"""Retrieval evaluation, the paper's protocol: the gallery is every image of the split, the query's
own image is excluded, and a hit at K is any of the top K with the target's label."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from tirg.data import CSSDataset, ImageNormalizer, Query
from tirg.models import ComposeModel

RECALL_AT = (1, 5, 10, 50, 100)


def _over_images(encode, dataset: CSSDataset, normalizer: ImageNormalizer, batch_size: int) -> torch.Tensor:
    """`encode` over every image of the split, in batches (not normalized)."""
    return torch.cat([encode(normalizer(dataset.pixels[i:i + batch_size]))
                      for i in range(0, len(dataset), batch_size)]).float()


def _composed(model: ComposeModel, queries: Sequence[Query], image_features_of, batch_size: int) -> torch.Tensor:
    """Normalized composed queries; `image_features_of(source indices)` gives their image features."""
    parts = [model.compose_img_text_features(image_features_of([q.source for q in chunk]),
                                             model.extract_text_feature([q.text for q in chunk]))
             for chunk in (queries[i:i + batch_size] for i in range(0, len(queries), batch_size))]
    return F.normalize(torch.cat(parts).float(), dim=1)


@torch.inference_mode()
def gallery_features(model: ComposeModel, dataset: CSSDataset, normalizer: ImageNormalizer,
                     batch_size: int = 256) -> torch.Tensor:
    return F.normalize(_over_images(model.target_features, dataset, normalizer, batch_size), dim=1)


@torch.inference_mode()
def query_features(model: ComposeModel, dataset: CSSDataset, queries: Sequence[Query],
                   normalizer: ImageNormalizer, batch_size: int = 256) -> torch.Tensor:
    return _composed(model, queries, lambda sources: model.extract_img_feature(normalizer(dataset.pixels[sources])),
                     batch_size)


@torch.no_grad()
def image_features(model: ComposeModel, dataset: CSSDataset, normalizer: ImageNormalizer,
                   batch_size: int = 256) -> torch.Tensor:
    """Every image's pooled feature, as composition takes it (not normalized), in eval mode: what a frozen
    image encoder gives, computed once (tirg.train with freeze_image_encoder)."""
    if not model.composes_pooled_features:
        raise ValueError(f"model {model.config.model!r} composes a feature map, not cached pooled features")
    was_training = model.training
    model.eval()
    features = _over_images(model.extract_img_feature, dataset, normalizer, batch_size)
    model.train(was_training)
    return features


@torch.inference_mode()
def query_features_of(model: ComposeModel, features: torch.Tensor, queries: Sequence[Query],
                      batch_size: int = 1024) -> torch.Tensor:
    """`query_features` from cached image features (see image_features)."""
    return _composed(model, queries, lambda sources: features[sources], batch_size)


def recall_at_k(queries_feat: torch.Tensor, gallery_feat: torch.Tensor, sources: np.ndarray | None,
                target_labels: np.ndarray, gallery_labels: np.ndarray,
                ks: Sequence[int] = RECALL_AT, chunk: int = 1024) -> dict[str, float]:
    """Recall@K in percent: a hit is a gallery item with the query's target label in the top K.
    `sources` (the gallery index of each query's own image) are left out of its ranking, as the paper's
    protocol does; None for queries that are not gallery items (text -> image)."""
    top = max(ks)
    hits = {k: 0 for k in ks}
    labels = torch.as_tensor(gallery_labels)
    for start in range(0, len(queries_feat), chunk):
        sims = queries_feat[start:start + chunk] @ gallery_feat.t()
        if sources is not None:
            rows = torch.arange(len(sims))
            sims[rows, torch.as_tensor(sources[start:start + chunk])] = -float("inf")
        ranked = labels[sims.topk(min(top, sims.shape[1]), dim=1).indices]
        match = ranked == torch.as_tensor(target_labels[start:start + chunk])[:, None]
        for k in ks:
            hits[k] += int(match[:, :k].any(dim=1).sum())
    return {f"R@{k}": 100.0 * hits[k] / len(queries_feat) for k in ks}


def evaluate(model: ComposeModel, dataset: CSSDataset, normalizer: ImageNormalizer,
             queries: Sequence[Query] | None = None, features: torch.Tensor | None = None) -> dict[str, float]:
    """`features`: the split's cached image features (see image_features), used instead of its pixels."""
    was_training = model.training
    model.eval()
    queries = list(queries if queries is not None else dataset.queries)
    if features is None:
        gallery = gallery_features(model, dataset, normalizer)
        composed = query_features(model, dataset, queries, normalizer)
    else:
        gallery = F.normalize(features, dim=1)
        composed = query_features_of(model, features, queries)
    model.train(was_training)
    sources = np.array([q.source for q in queries])
    targets = dataset.labels[[q.target for q in queries]]
    return recall_at_k(composed, gallery, sources, targets, dataset.labels)
