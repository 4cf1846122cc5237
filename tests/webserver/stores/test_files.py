import hashlib

import pytest

from webserver.stores.files import FileStore


def test_bytes_land_at_a_path_made_from_their_digest(tmp_path):
    store = FileStore(tmp_path)
    data = b"\x89PNG fake"
    digest = hashlib.sha256(data).hexdigest()
    relative = store.put(data, digest, "PNG")
    assert relative == f"{digest[:2]}/{digest[2:4]}/{digest}.png"
    assert store.read(relative) == data
    assert store.put(data, digest, "PNG") == relative  # idempotent
    assert store.content_type(relative) == "image/png"


@pytest.mark.parametrize("bad", ["../../etc/passwd" + "0" * 48, "A" * 64, "short"])
def test_paths_never_come_from_user_text(tmp_path, bad):
    with pytest.raises(ValueError):
        FileStore(tmp_path).relative_path(bad, "PNG")


def test_absolute_refuses_to_leave_the_root(tmp_path):
    with pytest.raises(ValueError):
        FileStore(tmp_path / "files").absolute("../outside.png")
