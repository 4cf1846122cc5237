"""Platform benchmark: ingest throughput and query latency, Milvus Lite vs numpy brute force.

    python scripts/bench_platform.py [--model tiny-clip|ViT-B-32] [--precision auto|fp32|bf16]
                                     [--images 1000] [--sizes 10000 100000] [--queries 200] [--out FILE]

Weights are random (saved to a temp file): timing depends on the architecture, not on the weights, so
this runs offline. Ingest uses real Fashion-MNIST images through the same service code as the server;
the search collections are filled with synthetic unit vectors and queried with encoded text and images.
Prints a table and writes JSON. Medians (p50) and p95 over repeated queries; this machine is noisy.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _bootstrap  # noqa: F401
import numpy as np

from tirg.hardware import machine_summary


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    return {"p50_ms": round(statistics.median(ordered), 3),
            "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3)}


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def bench_ingest(services, count: int) -> dict:
    from _samples import sample_pngs

    from webserver.services.images import Upload

    uploads = [Upload(data=data, filename=f"{i}.png", meta={"label": label})
               for i, (data, label) in enumerate(sample_pngs(count))]
    prepared = [services.images.prepare(u) for u in uploads]
    images = [p.decoded.image for p in prepared]
    services.encoders.clip.encode_images(images[:32])  # warm-up
    encode_ms = timed(lambda: services.encoders.clip.encode_images(images))
    services.collections.ensure("bench_ingest")
    batch = 64
    ingest_ms = timed(lambda: [services.images.add_prepared("bench_ingest", prepared[i:i + batch])
                               for i in range(0, count, batch)])
    return {"images": count, "encode_only_img_per_s": round(count / encode_ms * 1000, 1),
            "ingest_img_per_s": round(count / ingest_ms * 1000, 1)}


def fill_synthetic(services, name: str, size: int, dim: int) -> np.ndarray:
    rng = np.random.default_rng(size)
    vectors = rng.normal(size=(size, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    if services.vectors.has_collection(name):
        services.vectors.drop_collection(name)
    services.vectors.create_collection(name, dim)
    step = 5000
    for start in range(0, size, step):
        chunk = vectors[start:start + step]
        services.vectors.upsert(name, range(start + 1, start + 1 + len(chunk)), chunk, [{}] * len(chunk))
    services.vectors.flush(name)
    return vectors


def bench_search(services, sizes: list[int], queries: int, top_k: int) -> list[dict]:
    from _samples import sample_images

    texts = [f"a photo of a {label}" for _, label in sample_images(queries)]
    images = [image for image, _ in sample_images(queries, start=1000)]
    clip = services.encoders.clip
    text_ms = [timed(lambda t=t: clip.encode_texts([t])) for t in texts]
    image_ms = [timed(lambda i=i: clip.encode_images([i])) for i in images]
    query_vectors = {"text": clip.encode_texts(texts), "image": clip.encode_images(images)}
    rows = []
    for size in sizes:
        name = f"bench_{size}"
        matrix = fill_synthetic(services, name, size, services.encoders.clip.dimension)
        for kind, vectors in query_vectors.items():
            services.vectors.search(name, vectors[0], limit=top_k)  # warm-up / load
            milvus = [timed(lambda v=v, n=name: services.vectors.search(n, v, limit=top_k)) for v in vectors]
            brute = [timed(lambda v=v, m=matrix: np.argpartition(-(m @ v), top_k)[:top_k]) for v in vectors]
            encode = text_ms if kind == "text" else image_ms
            rows.append({"vectors": size, "query": kind, "encode": percentiles(encode),
                         "milvus_lite": percentiles(milvus), "numpy_brute_force": percentiles(brute)})
        services.vectors.drop_collection(name)
    return rows


def print_table(result: dict) -> None:
    ingest = result["ingest"]
    machine = result["machine"]
    print(f"\nmodel {result['model']} ({result['precision']}, asked {result['precision_requested']}), "
          f"dim {result['dimension']}, on {machine['hardware']} ({machine['processor']}), "
          f"{machine['threads']} torch threads")
    print(f"ingest: {ingest['ingest_img_per_s']} img/s end to end "
          f"(encode only: {ingest['encode_only_img_per_s']} img/s) over {ingest['images']} images\n")
    header = f"{'vectors':>8} {'query':>6} {'encode p50':>11} {'milvus p50':>11} {'milvus p95':>11} " \
             f"{'numpy p50':>10} {'numpy p95':>10}"
    print(header)
    print("-" * len(header))
    for row in result["search"]:
        print(f"{row['vectors']:>8} {row['query']:>6} {row['encode']['p50_ms']:>9.2f}ms "
              f"{row['milvus_lite']['p50_ms']:>9.2f}ms {row['milvus_lite']['p95_ms']:>9.2f}ms "
              f"{row['numpy_brute_force']['p50_ms']:>8.2f}ms {row['numpy_brute_force']['p95_ms']:>8.2f}ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny-clip")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="fp32")
    parser.add_argument("--cpu_class", default="auto", help="force a CPU class (tirg.hardware.CPU_CLASSES)")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("out/bench_platform.json"))
    args = parser.parse_args(argv)

    from config import Settings
    from webserver.encoders.clip import save_random_weights
    from webserver.services.container import build_services, prepare_stores

    with tempfile.TemporaryDirectory() as tmp:
        weights = save_random_weights(args.model, Path(tmp) / f"{args.model}-random.pt")
        settings = Settings(_env_file=None, DATA_DIR=Path(tmp) / "data", CLIP_MODEL=args.model,
                            CLIP_PRETRAINED=str(weights), CLIP_PRECISION=args.precision, DEVICE="cpu",
                            CPU_CLASS=args.cpu_class)
        services = build_services(settings)
        prepare_stores(services)
        clip = services.encoders.clip
        result = {"model": args.model, "precision": clip.precision.precision, "precision_requested": args.precision,
                  "dimension": clip.dimension, "machine": machine_summary("cpu", args.cpu_class),
                  "ingest": bench_ingest(services, args.images),
                  "search": bench_search(services, args.sizes, args.queries, args.top_k)}
        services.close()
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
