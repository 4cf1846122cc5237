"""Re-encode a collection from its stored images with the configured encoder (CLIP_MODEL / CLIP_PRETRAINED).

    python scripts/reindex.py --collection NAME [--batch-size N]

Use it after changing the model (the server refuses collections another encoder made), or to rebuild
Milvus from the metadata store, which is the source of truth. Stop the server first when it holds an
embedded Milvus Lite file.
"""
from __future__ import annotations

import argparse
import sys

import _bootstrap  # noqa: F401
from tqdm import tqdm


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collection", required=True)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)

    from config import Settings
    from webserver.errors import DomainError
    from webserver.services.container import build_services
    from webserver.services.maintenance import reindex

    try:
        services = build_services(Settings())
        total = services.metadata.count_images(args.collection)
        with tqdm(total=total, unit="img", desc=f"re-encoding {args.collection}") as bar:
            report = reindex(services, args.collection, batch_size=args.batch_size, on_batch=bar.update)
    except DomainError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 2
    encoder_id = services.collections.get_record(args.collection).encoder_id
    for image_id, why in report.missing:
        print(f"skipped image {image_id}: {why}", file=sys.stderr)
    print(f"{args.collection}: {report.encoded} images encoded with {encoder_id}"
          + (f"; {len(report.missing)} rows have no readable file (listed above)" if report.missing else ""))
    services.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
