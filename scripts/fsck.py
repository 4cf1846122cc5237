"""Check that SQL rows, Milvus vectors and stored files agree; with --repair, make them.

    python scripts/fsck.py --all [--repair] [--grace-s 600]
    python scripts/fsck.py --collection NAME [--collection NAME ...] [--repair]

Reports, per collection, rows without a vector, vectors without a row and rows whose file is gone; and,
across collections, files no row uses and wrong file reference counts. --repair re-encodes missing
vectors from the stored files, deletes stale vectors, removes orphan files (older than --grace-s) and
recounts references; rows whose file is gone can only be reported (delete them through the API).
Exit status: 0 clean (or everything repaired), 1 problems left, 2 an error. It uses the stores the
settings name, like the server; stop a server that holds an embedded Milvus Lite file first.
"""
from __future__ import annotations

import argparse
import sys

import _bootstrap  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--collection", action="append", help="a collection to check (repeatable)")
    which.add_argument("--all", action="store_true", help="every collection")
    parser.add_argument("--repair", action="store_true", help="fix what can be fixed")
    parser.add_argument("--grace-s", type=float, default=600.0,
                        help="leave files younger than this alone (writes in flight store theirs first)")
    parser.add_argument("--settle-s", type=float, default=2.0,
                        help="look again after this long before repairing a vector (writes in flight)")
    args = parser.parse_args(argv)

    from config import Settings
    from webserver.errors import DomainError
    from webserver.services.container import build_services, prepare_stores
    from webserver.services.fsck import fsck

    try:
        services = build_services(Settings())
        prepare_stores(services)
        report = fsck(services, None if args.all else args.collection, repair=args.repair,
                      grace_s=args.grace_s, settle_s=args.settle_s)
    except DomainError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 2
    done = "repaired" if args.repair else "found"
    for check in report.collections:
        print(f"{check.name}: {check.rows} rows, {check.vectors} vectors; "
              f"{len(check.missing_vectors)} rows without a vector, {len(check.stale_vectors)} vectors "
              f"without a row, {len(check.missing_files)} rows whose file is gone")
        for image_id, path in check.missing_files:
            print(f"  image {image_id}: file {path} is gone (delete the image, or restore the file)")
        for why in check.unrepaired:
            print(f"  not repaired: {why}")
    print(f"files: {len(report.orphan_files)} orphan files {done}, "
          f"{len(report.wrong_references)} wrong reference counts {done}")
    services.close()
    if report.clean:
        print("clean")
        return 0
    left = any(c.missing_files or c.unrepaired for c in report.collections)
    return 1 if left or not args.repair else 0


if __name__ == "__main__":
    sys.exit(main())
