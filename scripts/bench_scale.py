"""Collections of 100k and 1M vectors on the embedded default and on a Milvus server: build time, memory,
search latency, recall@10 against exact search, and throughput at 1 and 8 concurrent clients.

    python scripts/bench_scale.py --sizes 100000 --backends lite
    milvus-server --data /tmp/milvus-bench --proxy-port 19531 &          # PyPI `milvus` (requirements-servers.txt)
    python scripts/bench_scale.py --sizes 100000 1000000 --backends standalone --milvus-port 19531 \\
        --index HNSW --hnsw-m 16 --ef-construction 200 --ef 16 32 64 128 --out docs/bench_scale.json

The vectors are clustered synthetic unit vectors (1,000 Gaussian clusters in 512 dimensions; the queries
are fresh points of the same clusters), or real embeddings from --vectors FILE.npy (of any dimension;
scripts/embed_real_vectors.py writes the demo CLIP's vectors of the scenes and Fashion-MNIST). The collection is
built and searched through the project's own VectorStore with the index settings given (the same as the
MILVUS_INDEX_TYPE, MILVUS_HNSW_M, MILVUS_HNSW_EF_CONSTRUCTION and MILVUS_SEARCH_EF settings). Recall@10
is measured against exact cosine search in numpy. Memory: the resident size of this process (Milvus Lite
runs in it) or of the Milvus server process. Prints a table with the CPU class and writes JSON.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import _bootstrap  # noqa: F401
import numpy as np
from tqdm import tqdm

DIMENSION = 512
CLUSTERS = 1000


@dataclass
class Row:
    backend: str
    vectors: int
    index: str
    build_s: float
    rss_mb: float
    ef: int | None = None
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    recall_at_10: float = 0.0
    qps: dict[int, float] = field(default_factory=dict)
    copy_read_s: float = 0.0  # lite: reading the collection into the store's in-memory copy (at each start)
    quiet_after_s: float | None = None  # server: how long after the build its background work ended (--wait-quiet)


def clustered_vectors(count: int, seed: int, chunk: int = 100_000) -> np.ndarray:
    """Unit vectors around CLUSTERS fixed centres (the same centres for every seed)."""
    centres = np.random.default_rng(12345).normal(size=(CLUSTERS, DIMENSION)).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((count, DIMENSION), dtype=np.float32)
    for start in range(0, count, chunk):
        size = min(chunk, count - start)
        points = centres[rng.integers(0, CLUSTERS, size)] + rng.normal(scale=0.8, size=(size, DIMENSION))
        out[start:start + size] = points / np.linalg.norm(points, axis=1, keepdims=True)
    return out


def exact_top_k(base: np.ndarray, queries: np.ndarray, k: int = 10, chunk: int = 200_000) -> np.ndarray:
    """Ids (row number + 1) of the k nearest rows by cosine, for each query."""
    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_ids = np.zeros((len(queries), 0), dtype=np.int64)
    for start in range(0, len(base), chunk):
        scores = queries @ base[start:start + chunk].T
        top = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
        best_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, 1)], axis=1)
        best_ids = np.concatenate([best_ids, top + start + 1], axis=1)
        keep = np.argsort(-best_scores, axis=1)[:, :k]
        best_scores, best_ids = np.take_along_axis(best_scores, keep, 1), np.take_along_axis(best_ids, keep, 1)
    return best_ids


def rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def milvus_server_pid(port: int) -> int | None:
    """The Milvus process (the PyPI package's milvus-server runs `milvus run standalone`), for its RSS."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "milvus" in command and "run standalone" in command:
            return int(proc.name)
    return None


def build(store, name: str, base: np.ndarray, batch: int = 5000) -> float:
    started = time.perf_counter()
    store.create_collection(name, base.shape[1])
    for start in tqdm(range(0, len(base), batch), desc=f"inserting {len(base):,}", unit="batch"):
        ids = list(range(start + 1, start + 1 + len(base[start:start + batch])))
        store.insert(name, ids, base[start:start + batch], [{}] * len(ids))
    store.flush(name)
    store.wait_for_index(name, timeout_s=3600)
    store.count(name)  # loaded and answering
    return time.perf_counter() - started


def latencies(store, name: str, queries: np.ndarray, truth: np.ndarray) -> tuple[list[float], float]:
    seconds, recalls = [], []
    for query, expected in zip(queries, truth, strict=True):
        started = time.perf_counter()
        hits = store.search(name, query, limit=10)
        seconds.append(time.perf_counter() - started)
        recalls.append(len({hit.id for hit in hits} & set(expected.tolist())) / 10)
    return seconds, float(np.mean(recalls))


def throughput(store, name: str, queries: np.ndarray, clients: int, duration_s: float) -> float:
    deadline = time.perf_counter() + duration_s

    def client(offset: int) -> int:
        done = 0
        while time.perf_counter() < deadline:
            store.search(name, queries[(offset + done) % len(queries)], limit=10)
            done += 1
        return done

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        total = sum(pool.map(client, range(clients)))
    return total / (time.perf_counter() - started)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat, fields 14 and 15, in clock ticks)."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_quiet(pid: int, below_percent: float, window_s: float, limit_s: float) -> float | None:
    """Wait until the server's CPU use stays under `below_percent` of one core for a whole window: the end of
    the merging and re-indexing a server does after a large build (measured once under it: p50 18 ms at 1M
    against what an idle server gives). Returns the seconds waited, or None when it was still busy at the
    limit."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit_s:
        before = cpu_seconds(pid)
        time.sleep(window_s)
        percent = 100 * (cpu_seconds(pid) - before) / window_s
        waited = time.perf_counter() - started
        print(f"  server CPU {percent:.0f}% of a core over the last {window_s:.0f} s ({waited / 60:.1f} min)",
              flush=True)
        if percent < below_percent:
            return round(waited, 1)
    return None


def settle(store, name: str, queries: np.ndarray, seconds: float) -> None:
    """Search for a while before measuring: after a build, a Milvus server goes on handing sealed segments
    over to their index in the background, and until then they are searched exactly (a first measurement
    there read recall 0.996 at ef 10, then 0.93 once settled)."""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for query in queries[:50]:
            store.search(name, query, limit=10)


def run_backend(args, backend: str, size: int, base: np.ndarray, queries: np.ndarray,
                truth: np.ndarray) -> list[Row]:
    from webserver.stores.vectors import IndexSettings, VectorStore

    index = IndexSettings(index_type=args.index, hnsw_m=args.hnsw_m, ef_construction=args.ef_construction,
                          ivf_nlist=args.nlist)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch:
        uri = f"http://127.0.0.1:{args.milvus_port}" if backend == "standalone" else f"{scratch}/milvus.db"
        store = VectorStore(uri, index=index, timeout_s=60, memory_search=backend == "lite")
        index_name = store.index_type
        name = args.existing or f"bench_{size}_{index_name.lower()}_{int(time.time())}"
        embedded = backend != "standalone"
        rss_before = rss_mb() if embedded else 0.0
        build_s = float("nan") if args.existing else build(store, name, base)
        started = time.perf_counter()
        store.read_memory_copy(name)  # what a start does in the background (lite only)
        copy_read_s = time.perf_counter() - started if backend == "lite" else 0.0
        index_name = store.index_type_of(name)
        pid = "self" if embedded else milvus_server_pid(args.milvus_port)
        rss = (rss_mb(pid) if pid else float("nan")) - rss_before
        quiet_after_s = None
        if backend == "standalone" and args.wait_quiet and isinstance(pid, int):
            quiet_after_s = wait_quiet(pid, args.wait_quiet, window_s=60, limit_s=args.wait_quiet_limit_s)
        if backend == "standalone" and args.settle_s:
            settle(store, name, queries, args.settle_s)
        rows = []
        for ef in args.ef or [None]:
            if ef is not None:  # HNSW ef and IVF nprobe alike
                store.index = replace(store.index, search_ef=ef, ivf_nprobe=ef)
            count = args.lite_queries if backend == "lite-milvus" and args.lite_queries else len(queries)
            latencies(store, name, queries[:3], truth[:3])  # warm up
            seconds, recall = latencies(store, name, queries[:count], truth[:count])
            ms = sorted(s * 1000 for s in seconds)
            row = Row(backend, size, index_name, round(build_s, 1), round(rss, 0), ef,
                      round(statistics.median(ms), 2), round(ms[int(0.95 * (len(ms) - 1))], 2), round(recall, 4),
                      copy_read_s=round(copy_read_s, 1), quiet_after_s=quiet_after_s)
            for clients in args.clients:
                row.qps[clients] = round(throughput(store, name, queries, clients, args.qps_seconds), 1)
            rows.append(row)
            print(format_row(row), flush=True)
        if backend == "standalone" and not args.existing:
            store.drop_collection(name)
        store.close()
    return rows


HEADER = ("| backend | vectors | index | ef | build s | copy read s | RSS MB | p50 ms | p95 ms | recall@10 | "
          "QPS 1 client | QPS 8 clients |\n|---|---|---|---|---|---|---|---|---|---|---|---|")


def format_row(row: Row) -> str:
    qps = [str(row.qps.get(c, "")) for c in (1, 8)]
    return (f"| {row.backend} | {row.vectors:,} | {row.index} | {row.ef or '-'} | {row.build_s} | "
            f"{row.copy_read_s or '-'} | {row.rss_mb:.0f} | "
            f"{row.p50_ms} | {row.p95_ms} | {row.recall_at_10:.4f} | {qps[0]} | {qps[1]} |")


def main(argv: list[str] | None = None) -> int:
    from webserver.stores.vectors import IndexSettings

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--backends", nargs="+", choices=["lite", "lite-milvus", "standalone"], default=["lite"],
                        help="lite: Milvus Lite searched through the store's in-memory copy (the default); "
                             "lite-milvus: Lite's own search (MILVUS_LITE_MEMORY_SEARCH=false)")
    parser.add_argument("--milvus-port", type=int, default=19530)
    parser.add_argument("--vectors", type=Path, help="real embeddings (.npy, rows unit-normalised here); "
                                                     "the last --queries rows are the queries")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--lite-queries", type=int, default=None,
                        help="fewer queries for Milvus Lite (its search time grows with the collection)")
    parser.add_argument("--index", default=None, help="index type (default: the store's: HNSW)")
    parser.add_argument("--hnsw-m", type=int, default=IndexSettings.hnsw_m)
    parser.add_argument("--ef-construction", type=int, default=IndexSettings.ef_construction)
    parser.add_argument("--nlist", type=int, default=IndexSettings.ivf_nlist)
    parser.add_argument("--ef", type=int, nargs="*", default=[], help="search ef (HNSW) or nprobe (IVF) values")
    parser.add_argument("--clients", type=int, nargs="*", default=[1, 8])
    parser.add_argument("--qps-seconds", type=float, default=5.0)
    parser.add_argument("--existing", help="measure this collection, built before by this script with the same "
                                           "--sizes (on a server: its build can outlast one run)")
    parser.add_argument("--settle-s", type=float, default=30.0,
                        help="on a server, search this long after the build before measuring (see settle)")
    parser.add_argument("--wait-quiet", type=float, metavar="PERCENT",
                        help="on a server, before measuring, wait until its process uses less than PERCENT of "
                             "one core for a minute (the steady state after its background merging)")
    parser.add_argument("--wait-quiet-limit-s", type=float, default=7200)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    from tirg.hardware import machine_summary

    machine = machine_summary("cpu")
    rows: list[Row] = []
    print(f"machine: {machine['hardware']} ({machine['processor']}), {machine['threads']} threads")
    print(HEADER)
    for size in args.sizes:
        if args.vectors:
            matrix = np.load(args.vectors, mmap_mode="r")
            matrix = np.array(matrix[: size + args.queries], dtype=np.float32)  # a copy: the file is mapped read-only
            matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
            base, queries = matrix[:-args.queries], matrix[-args.queries:]
        else:
            base, queries = clustered_vectors(size, seed=1), clustered_vectors(args.queries, seed=2)
        truth = exact_top_k(base, queries)
        for backend in args.backends:
            rows += run_backend(args, backend, len(base), base, queries, truth)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"machine": machine, "argv": sys.argv[1:],
                                        "source": str(args.vectors or "clustered synthetic"),
                                        "rows": [asdict(row) for row in rows]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
