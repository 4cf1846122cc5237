"""How much of a CSS-style split's answer the image alone gives away, without training anything.

    python scripts/probe_css_leak.py --dataset_path CSSDataset [--split test] [--out FILE.json]

Two measures, both upper-bound-like for an image-only model:
- graph: a source's one-modification neighbours in the split (its targets, and the images it is a
  target of). An image-only model that ranks exactly those first, in random order, gets R@1 about
  mean(targets / neighbours) -- the "ceiling" printed;
- pixels: retrieval by raw pixels (16x16 average-pooled, centred, cosine), the paper's protocol
  (query image excluded, a hit is any image with the target's label).
The paper's image-only CSS 3D->3D R@1 is 6.3; a generator whose ceiling or pixel R@1 is far above that
leaks the answer through the image.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import _bootstrap  # noqa: F401
import numpy as np
import torch
import torch.nn.functional as F


def graph_ceiling(queries) -> tuple[float, float]:
    """(mean one-modification neighbours of a query's source, expected R@1 of ranking them first)."""
    neighbours: dict[int, set[int]] = defaultdict(set)
    for query in queries:
        neighbours[query.source].add(query.target)
        neighbours[query.target].add(query.source)
    degree = [len(neighbours[q.source]) for q in queries]
    chance = [1 / len(neighbours[q.source]) for q in queries]
    return float(np.mean(degree)), 100.0 * float(np.mean(chance))


def pixel_recall(dataset, size: int = 16) -> dict[str, float]:
    from tirg.evaluate import recall_at_k

    pooled = F.adaptive_avg_pool2d(dataset.images.float(), size).flatten(1)
    features = F.normalize(pooled - pooled.mean(dim=0), dim=1)
    queries = dataset.queries
    sources = np.array([q.source for q in queries])
    targets = dataset.labels[[q.target for q in queries]]
    return recall_at_k(features[torch.as_tensor(sources)], features, sources, targets, dataset.labels)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset_path", type=Path, default=Path("CSSDataset"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    from tirg.data import CSSDataset

    dataset = CSSDataset(args.dataset_path, args.split)
    degree, ceiling = graph_ceiling(dataset.queries)
    pixels = pixel_recall(dataset)
    result = {"images": len(dataset), "queries": len(dataset.queries), "mean_neighbours": round(degree, 2),
              "image_only_ceiling_R@1": round(ceiling, 1), "pixels": {k: round(v, 1) for k, v in pixels.items()}}
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
