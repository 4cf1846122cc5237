"""A backup taken while uploads and deletes go on restores into empty stores whole: every row has its
vector and its file, fsck is clean, the ids are kept."""
import contextlib
import json
import random
import threading
import time

import pytest

from tests.images import sample_uploads
from webserver.errors import AlreadyExists, NotFound
from webserver.services.backup import backup, restore
from webserver.services.container import build_services
from webserver.services.fsck import fsck


@pytest.fixture(params=[("lite", "sqlite"), ("standalone", "mariadb")], ids=["lite-sqlite", "standalone-mariadb"])
def stores(request, make_settings, encoders, tmp_path):
    milvus, metadata = request.param

    def make(folder: str):
        services = build_services(make_settings(DATA_DIR=tmp_path / folder, milvus=milvus, metadata=metadata),
                                  encoders)
        services.metadata.create_schema()
        return services

    return make


def test_a_backup_during_uploads_and_deletes_restores_whole(stores, tmp_path):
    source = stores("source")
    for name in ("shop", "shoes"):
        source.collections.ensure(name)
    uploads = sample_uploads(40)
    source.images.add("shop", uploads[:10])
    stop = threading.Event()
    errors: list[BaseException] = []

    def churn(seed: int) -> None:
        rng = random.Random(seed)
        try:
            while not stop.is_set():
                name = rng.choice(["shop", "shoes"])
                listed = source.images.list(name, limit=50, offset=0)
                # lost races (the same bytes twice, an image deleted twice) are the client's to retry
                with contextlib.suppress(AlreadyExists, NotFound):
                    if rng.random() < 0.6 or not listed:
                        source.images.add(name, rng.sample(uploads, 2))
                    else:
                        source.images.delete(rng.choice(listed).id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=churn, args=(seed,)) for seed in range(3)]
    for worker in workers:
        worker.start()
    time.sleep(0.5)
    try:
        report = backup(source, tmp_path / "backup", shard_size=7)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    assert not errors, errors
    assert report.images > 0

    target = stores("target")
    restored = restore(target, tmp_path / "backup")
    summary = json.loads((tmp_path / "backup" / "backup.json").read_text())
    for name in ("shop", "shoes"):
        assert restored.collections[name].remapped == {}  # every id kept
        rows = [r for batch in target.metadata.iter_image_batches(name, 500) for r in batch]
        assert len(rows) == summary["collections"][name]["images"] == target.vectors.count(name)
        for row in rows:
            assert target.images.read_file(row.id)[0]
    assert fsck(target, grace_s=0).clean
    source.close()
    target.close()


def test_restore_goes_into_empty_stores_only(stores, tmp_path):
    source = stores("source")
    source.collections.ensure("shop")
    source.images.add("shop", sample_uploads(3))
    backup(source, tmp_path / "backup")
    with pytest.raises(AlreadyExists, match="hold images already"):
        restore(source, tmp_path / "backup")
    with pytest.raises(AlreadyExists, match="holds a backup already"):
        backup(source, tmp_path / "backup")
    source.close()
