"""A backup folder survives the tar stream byte for byte, and a stream cut short or naming paths outside
the target unpacks to nothing restore would take."""
import io
import tarfile

import pytest

from webserver.errors import InvalidInput
from webserver.services.archive import extract_backup, tar_chunks


def make_backup_folder(root):
    (root / "collections" / "shop" / "files").mkdir(parents=True)
    (root / "collections" / "shop" / "files" / "ab.png").write_bytes(bytes(range(256)) * 5)  # not a 512 multiple
    (root / "collections" / "shop" / "manifest.json").write_text("{}")
    (root / "backup.json").write_text('{"format": "x"}')


def test_the_stream_unpacks_to_the_same_files_with_backup_json_last(tmp_path):
    make_backup_folder(tmp_path / "made")
    chunks = list(tar_chunks(tmp_path / "made", chunk_bytes=100))
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        assert tar.getnames()[-1] == "backup.json"
    extract_backup(iter(chunks), tmp_path / "got")
    for path in (tmp_path / "made").rglob("*"):
        if path.is_file():
            assert (tmp_path / "got" / path.relative_to(tmp_path / "made")).read_bytes() == path.read_bytes()
    with pytest.raises(InvalidInput, match="holds a backup already"):
        extract_backup(iter(chunks), tmp_path / "got")


def test_a_stream_cut_short_is_refused_and_leaves_no_completion_mark(tmp_path):
    make_backup_folder(tmp_path / "made")
    whole = b"".join(tar_chunks(tmp_path / "made"))
    for cut in (700, len(whole) - 2048):
        with pytest.raises(InvalidInput, match="incomplete"):
            extract_backup(iter([whole[:cut]]), tmp_path / f"cut{cut}")
        assert not (tmp_path / f"cut{cut}" / "backup.json").exists()


def test_members_outside_the_target_are_refused(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(InvalidInput):
        extract_backup(iter([buffer.getvalue()]), tmp_path / "target")
    assert not (tmp_path / "escaped.txt").exists()
