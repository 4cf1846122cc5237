"""Operator routes: a backup taken by the running server, so that the embedded default (a Milvus Lite file
only this process may open) can be backed up without stopping it."""
from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from webserver.api.deps import ServicesDep
from webserver.api.errors import error_responses
from webserver.api.security import WRITE
from webserver.errors import AlreadyExists
from webserver.services.archive import tar_chunks
from webserver.services.backup import backup
from webserver.services.container import Services

router = APIRouter(prefix="/admin", tags=["admin"])
_one_backup_at_a_time = threading.Lock()


def _write_backup(services: Services, scratch: Path) -> int:
    if not _one_backup_at_a_time.acquire(blocking=False):
        raise AlreadyExists("A backup is running in this process already; try again when it ends.")
    try:
        return backup(services, scratch / "backup").images
    finally:
        _one_backup_at_a_time.release()


def _stream_then_remove(scratch: Path) -> Iterator[bytes]:
    try:
        yield from tar_chunks(scratch / "backup")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@router.post("/backup", summary="A consistent backup of every collection, streamed as tar", dependencies=WRITE,
             responses={200: {"content": {"application/x-tar": {}},
                              "description": "the backup folder of scripts/backup.py, backup.json last"},
                        **error_responses(401, 403, 409, 503)})
async def make_backup(request: Request, services: ServicesDep) -> StreamingResponse:
    """The SQL rows as of one transaction, exactly those rows' vectors and their files, while writes go
    on. The backup is written to a scratch folder under DATA_DIR first (it needs that much free space),
    then streamed and removed. `scripts/backup.py --server URL --out DIR` unpacks it. Needs a write key."""
    settings = request.app.state.settings
    settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".backup-", dir=settings.DATA_DIR))
    try:
        images = await run_in_threadpool(_write_backup, services, scratch)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    name = f"backup-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.tar"
    return StreamingResponse(_stream_then_remove(scratch), media_type="application/x-tar",
                             headers={"Content-Disposition": f'attachment; filename="{name}"',
                                      "X-Backup-Images": str(images)},
                             background=BackgroundTask(shutil.rmtree, scratch, ignore_errors=True))
