"""Import without encoding against the bulk loader's encoding: vectors/s vs images/s.

    python scripts/bench_transfer.py [--vectors 100000] [--encode-images 300] [--model ViT-B-32]
                                     [--precision auto] [--out out/bench_transfer.json]

Builds a dump of N distinct small PNGs with random unit vectors (dimension of --model) in the export
format, imports it into fresh embedded stores (Milvus Lite + SQLite) with scripts' own code path, and
exports it again; then runs the bulk loader (read, decode, encode with --model's architecture and random
weights, write) over --encode-images of the same images. Prints a table with the CPU class and writes JSON.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import _bootstrap  # noqa: F401
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image


def write_dump(root: Path, count: int, dimension: int, encoder_id: str) -> list[Path]:
    """A dump of ours, images as distinct 16x16 PNGs (a seeded pattern each), vectors random."""
    from webserver.services.transfer import FORMAT, sha256_of

    rng = np.random.default_rng(0)
    images_dir = root / "images"
    images_dir.mkdir(parents=True)
    paths = []
    for i in range(count):
        pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        (path := images_dir / f"{i:07d}.png").write_bytes(buffer.getvalue())
        paths.append(path)
    vectors = rng.normal(size=(count, dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    (root / "img_emb").mkdir()
    (root / "metadata").mkdir()
    np.save(root / "img_emb" / "img_emb_0.npy", vectors)
    rows = pa.table({"image_path": [f"images/{p.name}" for p in paths],
                     "caption": [f"image {i}" for i in range(count)]})
    pq.write_table(rows, root / "metadata" / "metadata_0.parquet")
    shard = {"vectors": "img_emb/img_emb_0.npy", "vectors_sha256": sha256_of(root / "img_emb" / "img_emb_0.npy"),
             "metadata": "metadata/metadata_0.parquet",
             "metadata_sha256": sha256_of(root / "metadata" / "metadata_0.parquet"), "rows": count}
    (root / "manifest.json").write_text(json.dumps({
        "format": FORMAT, "collection": "bench", "encoder_id": encoder_id, "dimension": dimension,
        "metric": "COSINE", "counts": {"images": count, "files": count, "shards": 1}, "shards": [shard]}))
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--encode-images", type=int, default=300)
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--out", type=Path, default=Path("out/bench_transfer.json"))
    args = parser.parse_args(argv)

    from config import Settings
    from tirg.hardware import machine_summary
    from webserver.encoders.clip import save_random_weights
    from webserver.services.bulk import BulkIngest
    from webserver.services.container import build_services, prepare_stores
    from webserver.services.transfer import export_collection, import_collection, open_dump

    with tempfile.TemporaryDirectory() as tmp:
        weights = save_random_weights(args.model, Path(tmp) / "weights.pt")
        settings = Settings(_env_file=None, DATA_DIR=Path(tmp) / "data", CLIP_MODEL=args.model,
                            CLIP_PRETRAINED=str(weights), CLIP_PRECISION=args.precision, DEVICE="cpu")
        services = build_services(settings)
        prepare_stores(services)
        clip = services.encoders.clip
        assert clip is not None
        started = time.perf_counter()
        paths = write_dump(Path(tmp) / "dump", args.vectors, clip.dimension, clip.encoder_id)
        print(f"dump of {args.vectors} written in {time.perf_counter() - started:.0f} s", flush=True)

        started = time.perf_counter()
        report = import_collection(services, open_dump(Path(tmp) / "dump"), batch_size=5000)
        import_s = time.perf_counter() - started
        started = time.perf_counter()
        export_collection(services, "bench", Path(tmp) / "export")
        export_s = time.perf_counter() - started

        services.collections.create("encoded")
        ingest = BulkIngest(images=services.images, metadata=services.metadata, collection="encoded",
                            root=Path(tmp) / "dump" / "images")
        started = time.perf_counter()
        encoded = ingest.run(paths[:args.encode_images], batch_size=32)
        encode_s = time.perf_counter() - started
        services.close()

    result = {"machine": machine_summary("cpu"), "model": args.model, "precision": clip.precision.precision,
              "vectors": args.vectors, "imported": report.added, "import_s": round(import_s, 1),
              "import_vectors_per_s": round(report.added / import_s, 1), "export_s": round(export_s, 1),
              "export_vectors_per_s": round(args.vectors / export_s, 1), "encoded_images": encoded.added,
              "bulk_loader_images_per_s": round(encoded.added / encode_s, 1),
              "bulk_loader_stage_seconds": {k: round(v, 2) for k, v in encoded.seconds.items()}}
    result["import_vs_reencode"] = round(result["import_vectors_per_s"] / result["bulk_loader_images_per_s"], 1)
    machine = result["machine"]
    print(f"\n{machine['hardware']} ({machine['processor']}), {machine['threads']} threads; "
          f"{args.model} {result['precision']}, random weights; Milvus Lite + SQLite")
    print(f"| | count | seconds | per second |\n|---|---|---|---|\n"
          f"| import (no encoding) | {report.added} | {import_s:.1f} | {result['import_vectors_per_s']} vectors |\n"
          f"| export | {args.vectors} | {export_s:.1f} | {result['export_vectors_per_s']} vectors |\n"
          f"| bulk loader (encode) | {encoded.added} | {encode_s:.1f} | {result['bulk_loader_images_per_s']} images |")
    print(f"import is {result['import_vs_reencode']}x the re-encode rate")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
