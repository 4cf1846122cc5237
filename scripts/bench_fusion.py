"""Late fusion of two composers on the CSS-style test split: the shipped TIRG and the trained combiner
over css-clip, ranked by w * cos(TIRG) + (1 - w) * cos(CLIP combiner), with w chosen on training queries.

    python scripts/bench_fusion.py --dataset_path CSSDataset [--out docs/fusion.json]

Equivalent to one search over concatenated vectors [sqrt(w) * tirg, sqrt(1 - w) * clip] (640-d), so a
single collection could serve it. The paper's protocol (tirg.evaluate.recall_at_k): the whole split is
the gallery, the query's own image is left out, a hit is any image of the target's scene. The weight is
chosen on a fixed sample of training queries against the whole training gallery, never on test.
Prints a table and writes JSON with the machine's facts.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import _bootstrap
import numpy as np
import torch
import torch.nn.functional as F

ROOT = _bootstrap.ROOT
WEIGHTS = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset_path", type=Path, default=ROOT / "CSSDataset")
    parser.add_argument("--tirg", type=Path, default=ROOT / "models" / "tirg-css.pt")
    parser.add_argument("--clip", type=Path, default=ROOT / "models" / "css-clip.pt")
    parser.add_argument("--clip_config", type=Path,
                        default=ROOT / "webserver" / "encoders" / "model_configs" / "css-clip.json")
    parser.add_argument("--combiner", type=Path, default=ROOT / "models" / "css-clip-combiner.pt")
    parser.add_argument("--train_queries", type=int, default=3000, help="training queries the weight is chosen on")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "fusion.json")
    return parser.parse_args(argv)


def composer_features(args, models, split: str, sample: int | None) -> dict:
    """Unit query and gallery vectors of both composers for one split, and what recall needs."""
    from tirg.clip_features import split_features
    from tirg.combiner_train import compose_queries
    from tirg.data import CSSDataset
    from tirg.evaluate import gallery_features, query_features

    tirg, normalizer, clip, combiner = models
    dataset = CSSDataset(args.dataset_path, split, tirg.config.image_size, load_images=True)
    queries = dataset.queries if sample is None else random.Random(5).sample(dataset.queries, sample)
    clip_split = split_features(clip, dataset, queries=queries)
    with torch.inference_mode():
        clip_queries = F.normalize(compose_queries(combiner, clip_split).float(), dim=1)
    return {"tirg": (query_features(tirg, dataset, queries, normalizer), gallery_features(tirg, dataset, normalizer)),
            "clip": (clip_queries, F.normalize(clip_split.images.float(), dim=1)),
            "sources": np.array([q.source for q in queries]), "targets": dataset.labels[[q.target for q in queries]],
            "labels": dataset.labels}


def fused_recall(features: dict, weight: float) -> dict[str, float]:
    from tirg.evaluate import recall_at_k

    a, b = weight ** 0.5, (1 - weight) ** 0.5
    (tirg_q, tirg_g), (clip_q, clip_g) = features["tirg"], features["clip"]
    return recall_at_k(torch.cat([a * tirg_q, b * clip_q], 1), torch.cat([a * tirg_g, b * clip_g], 1),
                       features["sources"], features["targets"], features["labels"], ks=(1, 5, 10, 50))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from tirg.checkpoint import load_model
    from tirg.clip_features import load_clip
    from tirg.combiner import load_combiner
    from tirg.data import ImageNormalizer
    from tirg.hardware import machine_summary

    started = time.perf_counter()
    tirg = load_model(args.tirg).float().eval()
    models = (tirg, ImageNormalizer(tirg.config.image_mean, tirg.config.image_std, "cpu"),
              load_clip("css-clip", str(args.clip), args.clip_config, torch.device("cpu")),
              load_combiner(args.combiner).eval())
    train = composer_features(args, models, "train", args.train_queries)
    on_train = {w: fused_recall(train, w)["R@1"] for w in WEIGHTS}
    chosen = max(WEIGHTS, key=lambda w: on_train[w])
    test = composer_features(args, models, "test", None)
    on_test = {w: fused_recall(test, w) for w in WEIGHTS}
    print("| TIRG weight w | train R@1 (sample) | test R@1 | R@5 | R@10 | R@50 |\n|---|---|---|---|---|---|")
    for w in WEIGHTS:
        mark = " (chosen on train)" if w == chosen else ""
        recalls = " | ".join(f"{on_test[w][k]:.1f}" for k in ("R@1", "R@5", "R@10", "R@50"))
        print(f"| {w}{mark} | {on_train[w]:.1f} | {recalls} |")
    result = {"machine": machine_summary(), "chosen_weight": chosen, "test_at_chosen": on_test[chosen],
              "train_R@1": {str(w): r for w, r in on_train.items()},
              "test": {str(w): r for w, r in on_test.items()}, "test_queries": len(test["sources"]),
              "train_queries": len(train["sources"]), "wall_s": round(time.perf_counter() - started, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"w = {chosen} (chosen on train): test {on_test[chosen]} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
