"""Composed search through the HTTP API against the same checkpoint offline: Recall@K must agree.

    TIRG_CHECKPOINT=tirg/css/tirg.pt python main.py &          # after insert_milvus.py ./tirg/css
    python scripts/bench_composed_http.py --server http://127.0.0.1:7000 --export tirg/css \\
        --dataset_path CSSDataset [--queries 500] [--collection scenes] [--out docs/composed_http.json]
    # a CLIP collection of the test images (metadata {"index": i}), composed by the server's combiner:
    python scripts/bench_composed_http.py --collection images --composer trained \\
        --combiner models/css-clip-combiner.pt --out docs/composed_http_clip.json

Samples test queries (source image, modification text, target) with a fixed seed. Online: POST /search
with the source's `image_id` and the text (the server excludes the query image, as the paper's protocol
does); a hit at K is any of the top K whose scene label is the target's. Offline: the exported
checkpoint composes the same queries and ranks the exported gallery (img.npy) with tirg.evaluate; for a CLIP
collection, the same CLIP (--clip_*) and composer (--combiner, or the sum at --sum_weight) over the test
split's images. Prints a table and writes JSON.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

import _bootstrap  # noqa: F401
import httpx
import numpy as np
import torch
from tqdm import tqdm

KS = (1, 5, 10)


def image_ids_by_index(client: httpx.Client, collection: str) -> dict[int, int]:
    """Dataset index (the loader's `index` metadata) -> image id in the server."""
    mapping, offset = {}, 0
    while True:
        page = client.get(f"/collections/{collection}/images", params={"limit": 1000, "offset": offset})
        page.raise_for_status()
        items = page.json()["items"]
        mapping.update({item["metadata"]["index"]: item["id"] for item in items if "index" in item["metadata"]})
        if len(items) < 1000:
            return mapping
        offset += 1000


def online_recall(client, collection, queries, labels, ids, composer) -> tuple[dict[str, float], list[float]]:
    index_of = {image_id: index for index, image_id in ids.items()}
    hits, latencies = {k: 0 for k in KS}, []
    for query in tqdm(queries, unit="query", desc="HTTP"):
        started = time.perf_counter()
        form = {"collection": collection, "text": query.text, "image_id": ids[query.source], "top_k": max(KS)}
        response = client.post("/search", data=form | ({"composer": composer} if composer else {}))
        latencies.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        ranked = [labels[index_of[hit["id"]]] for hit in response.json()["results"]]
        for k in KS:
            hits[k] += labels[query.target] in ranked[:k]
    return {f"R@{k}": 100.0 * hits[k] / len(queries) for k in KS}, latencies


def offline_recall(checkpoint: Path, gallery: np.ndarray, dataset, queries) -> dict[str, float]:
    from tirg.checkpoint import load_model
    from tirg.data import ImageNormalizer
    from tirg.evaluate import query_features, recall_at_k

    model = load_model(checkpoint)
    normalizer = ImageNormalizer(model.config.image_mean, model.config.image_std, "cpu")
    composed = query_features(model, dataset, queries, normalizer)
    gallery_t = torch.nn.functional.normalize(torch.from_numpy(gallery).float(), dim=1)
    sources = np.array([q.source for q in queries])
    targets = dataset.labels[[q.target for q in queries]]
    return recall_at_k(composed, gallery_t, sources, targets, dataset.labels, ks=KS)


def offline_clip_recall(args, dataset, queries) -> dict[str, float]:
    """The same queries composed offline in the CLIP space, ranked over the test split's CLIP vectors."""
    from tirg.clip_features import load_clip, split_features
    from tirg.combiner import load_combiner
    from tirg.combiner_train import score, sum_composer

    clip = load_clip(args.clip_model, args.clip_pretrained, args.clip_config)
    with tqdm(total=len(dataset), unit="img", desc="offline CLIP features") as bar:
        features = split_features(clip, dataset, progress=bar.update, queries=queries)
    composer = load_combiner(args.combiner) if args.combiner else sum_composer(args.sum_weight)
    return score(composer, features, ks=KS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default="http://127.0.0.1:7000")
    parser.add_argument("--export", type=Path, default=Path("tirg/css"), help="folder with img.npy and tirg.pt")
    parser.add_argument("--dataset_path", type=Path, default=Path("CSSDataset"))
    parser.add_argument("--collection", default="scenes")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("docs/composed_http.json"))
    parser.add_argument("--composer", choices=["sum", "trained"], help="a CLIP collection's composer")
    parser.add_argument("--combiner", help="CLIP collection: the combiner the server loaded (offline check)")
    parser.add_argument("--sum_weight", type=float, default=0.5, help="CLIP collection, no --combiner: the sum's")
    parser.add_argument("--clip_model", default="css-clip")
    parser.add_argument("--clip_pretrained", default="models/css-clip.pt")
    parser.add_argument("--clip_config", default="webserver/encoders/model_configs/css-clip.json")
    args = parser.parse_args(argv)

    from tirg.data import CSSDataset

    dataset = CSSDataset(args.dataset_path, "test")
    queries = random.Random(args.seed).sample(dataset.queries, args.queries)
    with httpx.Client(base_url=args.server, timeout=60) as client:
        ids = image_ids_by_index(client, args.collection)
        if len(ids) != len(dataset):
            print(f"error: {args.collection} holds {len(ids)} indexed images, the test split {len(dataset)}; "
                  f"run scripts/insert_milvus.py {args.export} first", file=sys.stderr)
            return 2
        kind = client.get(f"/collections/{args.collection}").json()["kind"]
        online, latencies = online_recall(client, args.collection, queries, dataset.labels, ids, args.composer)
        ran_on = client.get("/readyz").json()["checks"].get(f"{kind}_encoder", f"no {kind} encoder")
    if kind == "fused":  # offline, on every test query and each weight: scripts/bench_fusion.py
        offline = None
    else:
        offline = offline_recall(args.export / "tirg.pt", np.load(args.export / "img.npy"), dataset, queries) \
            if kind == "tirg" else offline_clip_recall(args, dataset, queries)

    print(f"{args.queries} test queries (seed {args.seed}), collection {args.collection} ({kind}"
          f"{', composer ' + args.composer if args.composer else ''}), server's encoder: {ran_on}")
    print("| | " + " | ".join(f"R@{k}" for k in KS) + " |\n|---|" + "---|" * len(KS))
    for name, recall in (("HTTP API", online), ("offline (same checkpoint)", offline)):
        if recall is None:
            continue
        print(f"| {name} | " + " | ".join(f"{recall[f'R@{k}']:.1f}" for k in KS) + " |")
    median_ms = statistics.median(latencies)
    print(f"HTTP composed query latency: median {median_ms:.1f} ms")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"queries": args.queries, "seed": args.seed, "http": online,
                                    "offline": offline, "http_median_ms": round(median_ms, 2),
                                    "collection": args.collection, "kind": kind, "composer": args.composer,
                                    "server_encoder": ran_on}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
