"""POST /admin/backup: the running server backs up its own stores (the only way for an embedded Milvus
Lite file, which no second process may open) while uploads and deletes go on; the stream restores whole."""
import contextlib
import threading

import pytest

from tests.webserver.api.helpers import upload
from webserver.api.routes import admin
from webserver.services.archive import extract_backup
from webserver.services.backup import restore
from webserver.services.container import build_services
from webserver.services.fsck import fsck

KEY = "backup-key-0123456789"


def test_a_backup_taken_during_uploads_and_deletes_restores_whole(make_client, make_settings, encoders, tmp_path):
    client = make_client()
    for start in range(0, 12, 4):
        assert upload(client, "images", 4, start)[0].status_code == 201
    stop, statuses = threading.Event(), []

    def churn() -> None:
        start = 100
        while not stop.is_set():
            statuses.append(upload(client, "images", 2, start)[0].status_code)
            listed = client.get("/collections/images/images", params={"limit": 1}).json()["items"]
            statuses.append(client.delete(f"/images/{listed[0]['id']}").status_code)
            start += 2

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        with client.stream("POST", "/admin/backup") as response:
            assert response.status_code == 200 and response.headers["content-type"] == "application/x-tar"
            extract_backup(response.iter_bytes(), tmp_path / "backup")
    finally:
        stop.set()
        worker.join()
    assert statuses and set(statuses) <= {201, 204}
    assert int(response.headers["x-backup-images"]) > 0
    assert not [p for p in client.app.state.settings.DATA_DIR.iterdir() if p.name.startswith(".backup-")]

    target = build_services(make_settings(DATA_DIR=tmp_path / "target"), encoders)
    target.metadata.create_schema()
    restored = restore(target, tmp_path / "backup")
    assert restored.collections["images"].remapped == {}
    rows = [r for batch in target.metadata.iter_image_batches("images", 500) for r in batch]
    assert len(rows) == int(response.headers["x-backup-images"]) == target.vectors.count("images")
    assert all(target.images.read_file(row.id)[0] for row in rows)
    assert fsck(target, grace_s=0).clean
    target.close()


def test_a_backup_needs_a_write_key_and_runs_one_at_a_time(make_client):
    client = make_client(API_KEYS=KEY)
    assert client.post("/admin/backup").status_code == 401
    assert client.post("/admin/backup", headers={"Authorization": "Bearer wrong"}).status_code == 401
    with contextlib.ExitStack() as held:
        assert admin._one_backup_at_a_time.acquire(blocking=False)
        held.callback(admin._one_backup_at_a_time.release)
        busy = client.post("/admin/backup", headers={"Authorization": f"Bearer {KEY}"})
        assert busy.status_code == 409 and "running" in busy.json()["detail"]
    made = client.post("/admin/backup", headers={"Authorization": f"Bearer {KEY}"})
    assert made.status_code == 200 and made.content.endswith(b"\0" * 1024)


@pytest.mark.parametrize("origin", ["http://evil.example"])
def test_a_page_of_another_site_cannot_start_a_backup(client, origin):
    assert client.post("/admin/backup", headers={"Origin": origin}).status_code == 403
