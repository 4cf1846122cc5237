"""Restore a backup made by scripts/backup.py into empty stores (the ones the settings name), without
encoding a single image, keeping every id.

    python scripts/restore.py DIR

The stores must hold no images (the server's empty default collections may exist). The loaded model must
be the one that made each collection's vectors (as for scripts/import_collection.py). Run
`python scripts/fsck.py --all` afterwards to check.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import _bootstrap  # noqa: F401
from tqdm import tqdm


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("backup", type=Path)
    args = parser.parse_args(argv)

    from config import Settings
    from webserver.errors import DomainError
    from webserver.services.backup import restore
    from webserver.services.container import build_services, prepare_stores

    try:
        services = build_services(Settings())
        prepare_stores(services)
        with tqdm(unit="img", desc="restoring") as bar:
            report = restore(services, args.backup, on_rows=bar.update)
    except DomainError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 2
    for name, imported in report.collections.items():
        print(f"{name}: restored {imported.added} images")
    services.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
