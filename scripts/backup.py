"""Back up every collection while the server keeps taking writes: the SQL rows as of one transaction,
exactly those rows' vectors, and their files, in the export format.

    python scripts/backup.py --out DIR                              # opens the stores itself
    python scripts/backup.py --server http://127.0.0.1:7000 --out DIR # the running server makes it

DIR gets backup.json (written last: its presence means the backup is complete) and collections/NAME/, one
dump per collection (see scripts/export_collection.py); restore with scripts/restore.py. A row deleted
while the backup runs may be left out (listed); rows added after it started are not in it. No model is
loaded. Without --server it opens the stores the settings name: beside a running server that works on a
Milvus server + MySQL. An embedded Milvus Lite file is held by the running server: there use --server,
and the server writes the backup (under its DATA_DIR, then streams it here; POST /admin/backup, which
takes a write key: --api-key, else the first of API_KEYS).
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
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--shard-size", type=int, default=100_000)
    parser.add_argument("--server", help="URL of a running server that makes the backup itself")
    parser.add_argument("--api-key", help="a write key of the server (default: the first of API_KEYS)")
    args = parser.parse_args(argv)
    if args.server:
        failed = backup_through(args.server, args.api_key, args.out)
    else:
        failed = backup_here(args.out, args.shard_size)
    if failed:
        return failed
    print_summary(args.out)
    return 0


def backup_here(out: Path, shard_size: int) -> int:
    from config import Settings
    from webserver.encoders.registry import EncoderSet
    from webserver.errors import DomainError
    from webserver.services.backup import backup
    from webserver.services.container import build_services, prepare_stores

    settings = Settings()
    try:
        services = build_services(settings, EncoderSet())  # vectors are copied, not made: no model
        prepare_stores(services)
        with tqdm(unit="img", desc="backing up") as bar:
            backup(services, out, shard_size=shard_size, on_rows=bar.update)
    except DomainError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        if "held by another process" in exc.detail:
            print(f"hint: python scripts/backup.py --out {out} --server http://127.0.0.1:{settings.PORT}",
                  file=sys.stderr)
        return 2
    services.close()
    return 0


def backup_through(server: str, api_key: str | None, out: Path) -> int:
    import httpx

    from config import Settings
    from webserver.errors import DomainError
    from webserver.services.archive import extract_backup

    if (out / "backup.json").exists():
        print(f"error: {out} holds a backup already; name a new folder.", file=sys.stderr)
        return 2
    key = api_key or next(iter(Settings().write_keys), None)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        with httpx.Client(base_url=server, headers=headers, timeout=httpx.Timeout(30, read=3600)) as client, \
                client.stream("POST", "/admin/backup") as response:
            if response.status_code != 200:
                response.read()
                print(f"error: {response.status_code} {response.text}", file=sys.stderr)
                return 1
            with tqdm(unit="B", unit_scale=True, desc="receiving backup") as bar:
                extract_backup((bar.update(len(chunk)) or chunk for chunk in response.iter_bytes()), out)
    except (httpx.HTTPError, DomainError) as exc:
        print(f"error: {getattr(exc, 'detail', None) or exc}", file=sys.stderr)
        return 2
    return 0


def print_summary(out: Path) -> None:
    summary = json.loads((out / "backup.json").read_text())
    for name, made in summary["collections"].items():
        left_out = len(made["left_out"])
        print(f"{name}: {made['images']} images" + (f" ({left_out} deleted meanwhile, left out)" if left_out else ""))
    total = sum(made["images"] for made in summary["collections"].values())
    print(f"backup of {len(summary['collections'])} collections, {total} images, in {out}")


if __name__ == "__main__":
    sys.exit(main())
