"""Image bytes on disk, content-addressed: DATA_DIR/files/ab/cd/<sha256>.<ext>.

Paths are made from the digest and a fixed extension table, never from anything a user sends.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif"}
CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png", "gif": "image/gif", "webp": "image/webp",
                 "bmp": "image/bmp", "tif": "image/tiff", "bin": "application/octet-stream"}


class FileStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def relative_path(self, sha256: str, image_format: str) -> str:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError("not a sha256 hex digest")
        ext = EXTENSIONS.get(image_format.upper(), "bin")
        return f"{sha256[:2]}/{sha256[2:4]}/{sha256}.{ext}"

    def absolute(self, relative: str) -> Path:
        path = (self.root / relative).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError("path escapes the file store")
        return path

    def put(self, data: bytes, sha256: str, image_format: str) -> str:
        """Write once (atomically, via rename); the same bytes always land at the same path."""
        relative = self.relative_path(sha256, image_format)
        self.write(relative, data)
        return relative

    def write(self, relative: str, data: bytes) -> None:
        """The bytes at a path made by relative_path, unless a complete file is there already."""
        target = self.absolute(relative)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)

    def exists(self, relative: str) -> bool:
        return self.absolute(relative).is_file()

    def list_files(self) -> Iterator[tuple[str, float]]:
        """Every file under the root, temporary ones included: (relative path, modification time)."""
        if not self.root.is_dir():
            return
        for path in self.root.rglob("*"):
            if path.is_file():
                yield path.relative_to(self.root).as_posix(), path.stat().st_mtime

    def read(self, relative: str) -> bytes:
        return self.absolute(relative).read_bytes()

    def remove(self, relative: str) -> None:
        self.absolute(relative).unlink(missing_ok=True)

    @staticmethod
    def content_type(relative: str) -> str:
        return CONTENT_TYPES.get(relative.rsplit(".", 1)[-1], "application/octet-stream")
