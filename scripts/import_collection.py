"""Load a dump made by export_collection.py (or clip-retrieval's `clip inference` output) into the stores
the settings name (Milvus Lite or a server; SQLite or MySQL), without encoding a single image.

    python scripts/import_collection.py DIR [--collection NEW] [--encoder ID] [--batch-size 2000]

The dump's encoder (manifest.json, or --encoder for clip-retrieval output, e.g. open_clip/ViT-B-32/openai)
must be a model this server loads (CLIP_MODEL / CLIP_PRETRAINED, TIRG_CHECKPOINT) and match the target
collection. Original ids are kept where free, else new ones are given and the mapping is written to
--mapping. Images the collection already holds are skipped, so an interrupted import resumes by running
it again. Checksums are verified first and counts at the end.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import _bootstrap  # noqa: F401
from tqdm import tqdm


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dump", type=Path)
    parser.add_argument("--collection", help="target collection (default: the exported one's name)")
    parser.add_argument("--encoder", help="the encoder id that made the vectors (needed without manifest.json)")
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--mapping", type=Path, default=Path("id-mapping.json"),
                        help="where dump id -> new id is written when an id was taken")
    args = parser.parse_args(argv)

    import pyarrow.parquet as pq

    from config import Settings
    from webserver.errors import DomainError
    from webserver.services.container import build_services, prepare_stores
    from webserver.services.transfer import import_collection, open_dump

    try:
        dump = open_dump(args.dump, args.encoder)
        services = build_services(Settings())
        prepare_stores(services)
        total = sum(pq.read_metadata(meta).num_rows for _, meta in dump.shards)
        with tqdm(total=total, unit="img", desc="importing") as bar:
            report = import_collection(services, dump, collection=args.collection, batch_size=args.batch_size,
                                       on_rows=bar.update)
    except DomainError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 2
    if report.remapped:
        args.mapping.write_text(json.dumps({str(k): v for k, v in report.remapped.items()}, indent=0))
        print(f"{len(report.remapped)} ids were taken in the target: dump id -> new id in {args.mapping}")
    print(f"{report.collection}: added {report.added}, already present {report.already_present}; "
          f"now {services.metadata.count_images(report.collection)} images")
    services.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
