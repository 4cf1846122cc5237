"""Writers, deleters and searchers at once: no file is lost, no row is half-written, nothing leaks
between collections."""
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.images import sample_uploads
from webserver.errors import AlreadyExists, NotFound
from webserver.services.container import build_services
from webserver.services.fsck import fsck
from webserver.services.search import SearchQuery


@pytest.fixture(params=["sqlite", "mariadb"])
def two_collections(request, make_settings, encoders):
    services = build_services(make_settings(metadata=request.param), encoders)
    services.metadata.create_schema()
    for name in ("a", "b"):
        services.collections.ensure(name)
    yield services
    services.close()


@pytest.mark.parametrize("store, step", [("metadata", "insert_images"), ("vectors", "insert")])
def test_a_delete_racing_an_upload_of_the_same_bytes_keeps_the_file(two_collections, monkeypatch, store, step):
    """Before, the delete counted the file's references before the upload's row committed and removed the
    file after the upload had found it present: b's new row kept its vector, and its file was gone.
    Here the delete of a's copy runs as the upload reaches a step of its write (before its rows, while it
    writes its vectors): it may finish then, or wait for the upload's commit."""
    services = two_collections
    upload = sample_uploads(1)[0]
    [in_a] = services.images.add("a", [upload])
    target = getattr(services, store)
    original = getattr(target, step)

    reached = []

    def step_while_deleting(*args, **kwargs):
        reached.append(step)
        deleting = threading.Thread(target=services.images.delete, args=(in_a.id,))
        deleting.start()
        deleting.join(timeout=1.0)
        return original(*args, **kwargs)

    monkeypatch.setattr(target, step, step_while_deleting)
    with ThreadPoolExecutor(1) as pool:
        [in_b] = pool.submit(services.images.add, "b", [upload]).result()
    monkeypatch.undo()
    assert reached == [step]  # the upload went through the step the delete races
    assert services.images.read_file(in_b.id)[0] == upload.data
    time.sleep(0.5)  # the delete, if it waited, is done by now
    assert services.metadata.get_images([in_a.id]) == {}
    services.images.delete(in_b.id)
    assert not list(services.files.list_files())


def test_search_returns_only_rows_of_the_collection_searched(two_collections):
    """A vector left in `a` under an id whose row is in `b` (a killed write, then an id handed out again,
    as 0.4.0 did) used to come back from a search of `a` with b's image and caption."""
    services = two_collections
    [in_b] = services.images.add("b", sample_uploads(1))
    vector = services.vectors.get_vectors("b", [in_b.id])[in_b.id]
    services.vectors.upsert("a", [in_b.id], vector[None], [{}])
    hits = services.search.search(SearchQuery("a", image_id=None, text="a shoe")).hits
    assert hits == []


def test_writers_deleters_and_searchers_leave_the_stores_in_agreement(two_collections):
    services = two_collections
    pool_of_uploads = sample_uploads(24)
    shared = pool_of_uploads[:6]  # bytes every writer sends, to both collections
    stop = time.monotonic() + 12
    errors: list[BaseException] = []
    counts = {"added": 0, "deleted": 0, "searched": 0}
    lock = threading.Lock()

    def guarded(work):
        def loop(seed: int) -> None:
            rng = random.Random(seed)
            try:
                while time.monotonic() < stop:
                    work(rng)
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)
        return loop

    def write(rng: random.Random) -> None:
        batch = rng.sample(shared, 2) + rng.sample(pool_of_uploads[6:], 1)
        try:
            services.images.add(rng.choice("ab"), batch)
        except AlreadyExists:
            return  # lost the race for the same bytes twice: the client is told to send again
        with lock:
            counts["added"] += 1

    def delete(rng: random.Random) -> None:
        listed = services.images.list(rng.choice("ab"), limit=20, offset=0)
        if listed:
            try:
                services.images.delete(rng.choice(listed).id)
            except NotFound:
                return
            with lock:
                counts["deleted"] += 1

    def search(rng: random.Random) -> None:
        name = rng.choice("ab")
        for hit in services.search.search(SearchQuery(name, text="a bag", top_k=20)).hits:
            assert hit.record.collection == name
        with lock:
            counts["searched"] += 1

    workers = [guarded(write)] * 8 + [guarded(delete)] * 2 + [guarded(search)] * 2
    threads = [threading.Thread(target=work, args=(seed,)) for seed, work in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    assert min(counts.values()) > 0, counts

    for name in ("a", "b"):
        rows = [r for batch in services.metadata.iter_image_batches(name, 500) for r in batch]
        assert services.metadata.count_images(name) == services.vectors.count(name) == len(rows)
        assert len({r.sha256 for r in rows}) == len(rows)  # identical bytes stored once per collection
        for row in rows:
            assert services.images.read_file(row.id)[0]
    report = fsck(services, grace_s=0)
    assert report.clean, report
