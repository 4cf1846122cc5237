"""Schema revisions of the metadata database (SQLite or MySQL/MariaDB, as the settings name it).

    python scripts/migrate.py current              # the database's revision and the code's newest
    python scripts/migrate.py upgrade              # to the code's newest revision
    python scripts/migrate.py downgrade REVISION   # back to an older revision (e.g. before a rollback)

The embedded SQLite default upgrades itself at start, after copying its file to DATA_DIR/backups (as
`upgrade` does here). A MySQL database on an older revision stops the server's start until this is run
(or MIGRATE_ON_START=1): back it up first (mysqldump). No model is loaded.
"""
from __future__ import annotations

import argparse
import sys

import _bootstrap  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("current", help="print the database's revision and the newest this code knows")
    commands.add_parser("upgrade", help="upgrade to the newest revision")
    down = commands.add_parser("downgrade", help="downgrade to an older revision")
    down.add_argument("revision")
    args = parser.parse_args(argv)

    from config import Settings
    from webserver.errors import DomainError
    from webserver.services import migrations

    settings = Settings()
    try:
        if args.command == "current":
            state = migrations.status(settings)
            print(f"{state.database}: revision {state.current or '(empty database)'}; newest known {state.head}")
        elif args.command == "upgrade":
            report = migrations.upgrade(settings)
            if not report.changed:
                print(f"already at revision {report.after}")
            else:
                copied = f"; the old file was copied to {report.backup}" if report.backup else ""
                print(f"upgraded from revision {report.before or '(empty database)'} to {report.after}{copied}")
        else:
            migrations.downgrade(settings, args.revision)
            print(f"downgraded to revision {args.revision}")
    except DomainError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
