"""A backup folder as one tar stream and back, so that a backup can leave a running server over HTTP.

The stream is written file by file in constant memory (tarfile's stream mode buffers a whole member), and
backup.json comes last: a stream cut short unpacks to a folder without it, which restore refuses.
"""
from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from webserver.errors import InvalidInput

BLOCK = 512
COMPLETE_MARK = "backup.json"


def files_in_order(root: Path) -> list[Path]:
    files = sorted(path for path in root.rglob("*") if path.is_file())
    return sorted(files, key=lambda path: path.relative_to(root).as_posix() == COMPLETE_MARK)


def tar_chunks(root: Path, chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
    for path in files_in_order(root):
        info = tarfile.TarInfo(path.relative_to(root).as_posix())
        stat = path.stat()
        info.size, info.mtime, info.mode = stat.st_size, int(stat.st_mtime), 0o644
        yield info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        with path.open("rb") as source:
            while block := source.read(chunk_bytes):
                yield block
        if padding := -info.size % BLOCK:
            yield b"\0" * padding
    yield b"\0" * (2 * BLOCK)  # end of archive


class ChunkReader(io.RawIOBase):
    """A file object over an iterator of byte chunks (an HTTP body), for tarfile's stream mode."""

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            self._pending = next(self._chunks, b"")
            if not self._pending:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size], self._pending = self._pending[:size], self._pending[size:]
        return size


def extract_backup(chunks: Iterable[bytes], out: Path) -> None:
    """Unpack a backup stream into OUT (files only, nothing outside OUT: tarfile's "data" filter)."""
    if (out / COMPLETE_MARK).exists():
        raise InvalidInput(f"{out} holds a backup already; name a new folder.")
    out.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(fileobj=io.BufferedReader(ChunkReader(chunks), 1 << 20), mode="r|") as tar:
            tar.extractall(out, filter="data")
    except tarfile.TarError as exc:
        raise InvalidInput(f"The backup stream is damaged or ended early ({exc}); {out} is incomplete.") from exc
    if not (out / COMPLETE_MARK).is_file():
        raise InvalidInput(f"The backup stream ended early: {out} is incomplete (no {COMPLETE_MARK}).")
