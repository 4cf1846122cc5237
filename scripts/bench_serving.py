"""Serving benchmark: the real server (main.py) measured over HTTP, per configuration.

    python scripts/bench_serving.py [--model ViT-B-32] [--images 300] [--queries 48] [--clients 1 8]
                                    [--configs one-at-a-time batched defaults] [--out docs/bench_serving.json]

For each configuration a fresh server starts on a free port with its own DATA_DIR: CLIP `--model` with
random weights (timing depends on the architecture, not the weights, so this runs offline) and the shipped
TIRG (models/tirg-css.pt). It uploads `--images` Fashion-MNIST images into the CLIP collection and the TIRG
one (ingest images/s, end to end through HTTP), then sends a fixed, seeded workload of text, image (file
upload), composed (image_id + change, on the TIRG collection) and composed_clip (the same on the CLIP
collection: its stored vector and the text, zero-shot sum) queries from 1 and 8 concurrent clients: latency p50/p95 per
request as the client sees it, and throughput. Configurations:
- one-at-a-time: CLIP_PRECISION=fp32, QUERY_BATCH_MAX=1 (each query its own forward pass, as before);
- batched: CLIP_PRECISION=fp32 with the default query batching;
- batched-no-window: the same without the collection window (a batch is whatever waited while the
  previous pass ran);
- batched-torch: batched, the models run by torch (CLIP_RUNTIME=torch, TIRG_RUNTIME=torch), as before
  ONNX Runtime;
- defaults: no setting changed (CLIP_PRECISION=auto: bf16 where the CPU computes it natively;
  CLIP_RUNTIME=auto: ONNX Runtime where fp32 runs on a CPU, exported once into ONNX_CACHE).
Prints a table and writes JSON; medians, as this machine is noisy.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import _bootstrap
import httpx

from tirg.hardware import machine_summary

ROOT = _bootstrap.ROOT
CONFIGS = {
    "one-at-a-time": {"CLIP_PRECISION": "fp32", "QUERY_BATCH_MAX": "1"},
    "batched": {"CLIP_PRECISION": "fp32"},
    "batched-no-window": {"CLIP_PRECISION": "fp32", "QUERY_BATCH_WINDOW_MS": "0"},
    "batched-torch": {"CLIP_PRECISION": "fp32", "CLIP_RUNTIME": "torch", "TIRG_RUNTIME": "torch"},
    "defaults": {},
}
CHANGES = ["make top-left red object blue", "add red cube to center", "remove bottom-right object",
           "make center green object yellow"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--queries", type=int, default=48, help="queries per kind and client count")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench_serving.json")
    return parser.parse_args(argv)


KINDS = ("text", "image", "composed", "composed_clip")  # composed: on the TIRG collection


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    return {"p50_ms": round(statistics.median(ordered), 1),
            "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1)}


def start_server(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, str(ROOT / "main.py")], env=env, cwd=ROOT, start_new_session=True,
                               stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"the server stopped: see {log}")
        time.sleep(0.5)
    raise TimeoutError(f"the server was not ready in 300 s: see {log}")


def ingest(client: httpx.Client, collection: str, pngs: list[tuple[bytes, str]]) -> tuple[list[int], float]:
    """Upload in requests of 32 files: (ids, images per second)."""
    ids, started = [], time.perf_counter()
    for start in range(0, len(pngs), 32):
        chunk = pngs[start:start + 32]
        files = [("files", (f"{start + i}.png", data, "image/png")) for i, (data, _) in enumerate(chunk)]
        response = client.post(f"/collections/{collection}/images", files=files, timeout=600)
        response.raise_for_status()
        ids += [item["id"] for item in response.json()["items"]]
    return ids, len(pngs) / (time.perf_counter() - started)


def workload(kind: str, count: int, rng: random.Random, pngs: list[tuple[bytes, str]], scene_ids: list[int],
             image_ids: list[int]):
    """A fixed list of request bodies (data, files) for one kind of query."""
    from _samples import LABELS

    requests = []
    for _ in range(count):
        if kind == "text":
            requests.append(({"collection": "images", "text": f"a photo of a {rng.choice(LABELS)}"}, None))
        elif kind == "image":
            data = rng.choice(pngs)[0]
            requests.append(({"collection": "images"}, {"image": ("q.png", data, "image/png")}))
        elif kind == "composed":
            requests.append(({"collection": "scenes", "image_id": str(rng.choice(scene_ids)),
                              "text": rng.choice(CHANGES)}, None))
        else:  # composed on the CLIP collection: its stored vector plus the text, by the zero-shot sum
            requests.append(({"collection": "images", "image_id": str(rng.choice(image_ids)),
                              "text": rng.choice(CHANGES)}, None))
    return requests


def run_clients(base: str, requests: list, clients: int) -> dict:
    """Send `requests` from `clients` threads at once (each its own connection): latency and throughput."""
    def send(share: list) -> list[float]:
        times = []
        with httpx.Client(base_url=base, timeout=120) as client:
            for data, files in share:
                started = time.perf_counter()
                client.post("/search", data=data, files=files).raise_for_status()
                times.append((time.perf_counter() - started) * 1000)
        return times

    shares = [requests[i::clients] for i in range(clients)]
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = [t for times in pool.map(send, shares) for t in times]
    wall = time.perf_counter() - started
    return {**percentiles(latencies), "queries_per_s": round(len(requests) / wall, 1)}


def bench_config(args, name: str, weights: Path, pngs, workdir: Path) -> dict:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MILVUS_", "MYSQL_", "TIRG_", "CLIP_", "QUERY_"))}
    env.update(DATA_DIR=str(workdir / name), CLIP_MODEL=args.model, CLIP_PRETRAINED=str(weights), PORT=str(port),
               TIRG_CHECKPOINT=str(ROOT / "models" / "tirg-css.pt"), LOG_FORMAT="text", **CONFIGS[name])
    process = start_server(env, port, workdir / f"{name}.log")
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base) as client:
            # "ok (<id>, fp32 on cpu/avx2 via onnxruntime; composes by ...)"
            readiness = client.get("/readyz").json()["checks"]["clip_encoder"]
            precision = readiness.split(", ", 1)[1].split(";")[0].rstrip(")")
            image_ids, clip_rate = ingest(client, "images", pngs)
            scene_ids, tirg_rate = ingest(client, "scenes", pngs)
        rows = []
        for kind in KINDS:
            requests = workload(kind, args.queries, random.Random(args.seed), pngs, scene_ids, image_ids)
            run_clients(base, requests[:4], 1)  # warm-up
            for clients in args.clients:
                rows.append({"kind": kind, "clients": clients, **run_clients(base, requests, clients)})
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)
    return {"config": name, "settings": CONFIGS[name], "clip_encoder": precision,
            "ingest_img_per_s": {"clip": round(clip_rate, 1), "tirg": round(tirg_rate, 1)}, "queries": rows}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def print_table(results: list[dict]) -> None:
    print("| config | CLIP runs | ingest img/s (CLIP, TIRG) | query | clients | p50 ms | p95 ms | queries/s |")
    print("|---|---|---|---|---|---|---|---|")
    for result in results:
        ingest_rates = f"{result['ingest_img_per_s']['clip']}, {result['ingest_img_per_s']['tirg']}"
        for row in result["queries"]:
            print(f"| {result['config']} | {result['clip_encoder']} | {ingest_rates} | {row['kind']} "
                  f"| {row['clients']} | {row['p50_ms']} | {row['p95_ms']} | {row['queries_per_s']} |")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from _samples import sample_pngs

    from webserver.encoders.clip import save_random_weights

    pngs = sample_pngs(args.images)
    with tempfile.TemporaryDirectory() as tmp:
        weights = save_random_weights(args.model, Path(tmp) / f"{args.model}-random.pt")
        results = [bench_config(args, name, weights, pngs, Path(tmp)) for name in args.configs]
    print_table(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine_summary(), "model": args.model, "images": args.images,
                                    "queries_per_kind": args.queries, "results": results}, indent=2))
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
