"""Back up every collection while the server keeps taking writes: the SQL rows as of one transaction,
exactly those rows' vectors, and their files, in the export format.

    python scripts/backup.py --out DIR

DIR gets backup.json (written last: its presence means the backup is complete) and collections/NAME/, one
dump per collection (see scripts/export_collection.py); restore with scripts/restore.py. A row deleted
while the backup runs may be left out (listed); rows added after it started are not in it. No model is
loaded. It opens the stores the settings name: with a Milvus server and MySQL it runs beside the server;
an embedded Milvus Lite file is held by the running server, so stop the server first there.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import _bootstrap  # noqa: F401
from tqdm import tqdm


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--shard-size", type=int, default=100_000)
    args = parser.parse_args(argv)

    from config import Settings
    from webserver.encoders.registry import EncoderSet
    from webserver.errors import DomainError
    from webserver.services.backup import backup
    from webserver.services.container import build_services, prepare_stores

    try:
        services = build_services(Settings(), EncoderSet())  # vectors are copied, not made: no model
        prepare_stores(services)
        with tqdm(unit="img", desc="backing up") as bar:
            report = backup(services, args.out, shard_size=args.shard_size, on_rows=bar.update)
    except DomainError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 2
    for name, exported in report.collections.items():
        left_out = len(exported.without_vector + exported.without_file)
        print(f"{name}: {exported.images} images" + (f" ({left_out} deleted meanwhile, left out)" if left_out else ""))
    print(f"backup of {len(report.collections)} collections, {report.images} images, in {args.out}")
    services.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
