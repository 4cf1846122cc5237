"""Export one collection as a portable dump: vectors, rows and image files, no encoding.

    python scripts/export_collection.py --collection NAME --out DIR [--shard-size 100000]

DIR gets img_emb/img_emb_K.npy (float32 vectors), metadata/metadata_K.parquet (row i of shard K belongs
to vector i of shard K: id, sha256, image_path, filename, caption, metadata as JSON, width, height,
created), files/ (each image once, content-addressed) and manifest.json (format, encoder, dimension,
metric, counts, sha256 of every shard). Readable without this project; load it with
scripts/import_collection.py. No model is loaded. Stop the server first when it holds an embedded Milvus
Lite file.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import _bootstrap  # noqa: F401
from tqdm import tqdm


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collection", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--shard-size", type=int, default=100_000)
    args = parser.parse_args(argv)

    from config import Settings
    from webserver.encoders.registry import EncoderSet
    from webserver.errors import DomainError
    from webserver.services.container import build_services, prepare_stores
    from webserver.services.transfer import export_collection

    try:
        services = build_services(Settings(), EncoderSet())  # vectors are copied, not made: no model
        prepare_stores(services)
        total = services.metadata.count_images(args.collection)
        with tqdm(total=total, unit="img", desc=f"exporting {args.collection}") as bar:
            report = export_collection(services, args.collection, args.out, shard_size=args.shard_size,
                                       on_rows=bar.update)
    except DomainError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 2
    for image_id in report.without_vector:
        print(f"left out image {image_id}: it has no vector in Milvus (scripts/reindex.py rebuilds them)",
              file=sys.stderr)
    print(f"exported {report.images} images ({report.files} files, {report.shards} shards) to {args.out}")
    services.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
