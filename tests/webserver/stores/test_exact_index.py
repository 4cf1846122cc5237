"""The in-memory copy that answers searches on Milvus Lite: exact against numpy, and the same answers as
Lite's own search for the same rows, filters and pages."""
import threading
import time

import numpy as np
import pytest

from webserver.errors import InvalidInput
from webserver.stores.exact_index import ExactIndex, MemoryCopies
from webserver.stores.vectors import VectorStore, build_filter


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_search_is_exact_cosine_with_pages():
    data = np.random.default_rng(0).normal(size=(3000, 16)).astype(np.float32) * 5  # not unit: it normalizes
    index = ExactIndex()
    index.upsert(list(range(1, 3001)), data, [{}] * 3000)
    query = data[7] + 0.1
    order = np.argsort(-(unit(data) @ (query / np.linalg.norm(query))))
    hits = index.search(query, limit=10, offset=5)
    assert [pk for pk, _ in hits] == list(order[5:15] + 1)
    assert hits[0][1] == pytest.approx(float(unit(data)[order[5]] @ unit(query[None])[0]), abs=1e-5)


def test_upsert_replaces_delete_fills_the_gap_and_rows_stay_findable():
    rng = np.random.default_rng(1)
    data = unit(rng.normal(size=(50, 8)).astype(np.float32))
    index = ExactIndex()
    index.upsert(list(range(1, 51)), data, [{"n": i} for i in range(50)])
    index.delete([1, 25, 999])  # an unknown id is ignored
    index.upsert([50], data[3:4], [{"n": "moved"}])
    assert len(index) == 48
    for pk in (2, 24, 26, 49):
        assert index.search(data[pk - 1], limit=1) == [(pk, pytest.approx(1.0, abs=1e-5))]
    assert {pk for pk, _ in index.search(data[3], limit=2)} == {4, 50}
    assert index.search(data[0], limit=60, where=build_filter({"n": "moved"})) == [(50, pytest.approx(
        float(data[3] @ data[0]), abs=1e-5))]
    assert all(pk not in (1, 25) for pk, _ in index.search(data[0], limit=60))


def test_a_query_of_another_dimension_is_the_callers_error():
    """As Milvus answers it (InvalidInput, a 400), not a numpy ValueError (a 500)."""
    index = ExactIndex()
    index.upsert([1], np.ones((1, 4), np.float32), [{}])
    with pytest.raises(InvalidInput, match="4 dimensions"):
        index.search(np.ones(8, np.float32), limit=1)


def test_filters_exclusion_and_an_empty_index():
    index = ExactIndex()
    assert index.search(np.ones(4, np.float32), limit=5) == []
    index.upsert([1, 2, 3], np.eye(4, dtype=np.float32)[:3], [{"k": 1}, {"k": True}, {}])
    assert [pk for pk, _ in index.search(np.ones(4, np.float32), limit=5, where=build_filter({"k": 1}))] == [1, 2]
    hits = index.search(np.eye(4, dtype=np.float32)[0], limit=5, where=build_filter(None, exclude_id=1))
    assert [pk for pk, _ in hits][:1] != [1] and 1 not in {pk for pk, _ in hits} and len(hits) == 2


def test_lite_answers_as_its_own_search_does(make_settings):
    """The same rows, filters and pages through the copy and through Milvus Lite's own search; then writes
    after the copy was read (insert, upsert, delete) and a copy read back by a new store."""
    settings = make_settings(milvus="lite")
    settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    data = unit(rng.normal(size=(300, 8)).astype(np.float32))
    metas = [{"label": ["shoe", "dress", "bag"][i % 3], "n": i % 7, "flag": bool(i % 2)} for i in range(300)]
    for i in range(0, 300, 11):
        metas[i] = {"n": float(i % 7)}  # a float equal to an int, and no label
    milvus = VectorStore(settings.milvus_uri, memory_search=False)
    milvus.create_collection("c", 8)
    milvus.insert("c", list(range(1, 301)), data, metas)
    milvus.close()
    memory = VectorStore(settings.milvus_uri)
    milvus = VectorStore(settings.milvus_uri, memory_search=False)
    memory.read_memory_copy("c")

    def same_answers():
        for q in range(0, 300, 37):
            for where in (None, build_filter({"label": "dress"}), build_filter({"n": 3}, exclude_id=q + 1),
                          build_filter({"flag": True, "n": 2}), build_filter({"label": "none"})):
                for limit, offset in ((10, 0), (5, 7)):
                    ours = memory.search("c", data[q], limit=limit, offset=offset, where=where)
                    theirs = milvus.search("c", data[q], limit=limit, offset=offset, where=where)
                    assert [h.id for h in ours] == [h.id for h in theirs], (q, where, offset)
                    np.testing.assert_allclose([h.score for h in ours], [h.score for h in theirs], atol=1e-5)

    same_answers()
    memory.insert("c", [301], data[:1], [{"label": "dress"}])
    memory.upsert("c", [2], data[5:6], [{"label": "bag", "n": 3}])
    memory.delete("c", [3, 4])
    same_answers()
    assert {h.id for h in memory.search("c", data[0], limit=2)} == {1, 301}
    reopened = VectorStore(settings.milvus_uri)
    before_copy = [h.id for h in reopened.search("c", data[5], limit=3)]  # Lite's own, while the copy is read
    reopened.read_memory_copy("c")
    assert before_copy == [h.id for h in reopened.search("c", data[5], limit=3)] == [
        h.id for h in memory.search("c", data[5], limit=3)]
    memory.drop_collection("c")
    with pytest.raises(Exception, match="no such collection"):
        memory.search("c", data[0], limit=3)


def test_writes_made_while_a_copy_is_read_are_replayed_onto_it():
    started, release = threading.Event(), threading.Event()
    rows = unit(np.random.default_rng(3).normal(size=(4, 8)).astype(np.float32))

    def slow_read(name):
        index = ExactIndex()
        index.upsert([1, 2], rows[:2], [{}, {}])  # what Milvus held when reading began
        started.set()
        assert release.wait(10)
        return index

    copies = MemoryCopies(slow_read)
    assert copies.search("c", rows[0], limit=5, offset=0, where=None) is None  # not read yet: starts reading
    assert started.wait(10)
    copies.apply("c", lambda copy: copy.upsert([3], rows[2:3], [{}]))
    copies.apply("c", lambda copy: copy.delete([1]))
    assert copies.search("c", rows[0], limit=5, offset=0, where=None) is None  # still reading
    release.set()
    deadline = time.monotonic() + 10
    while (found := copies.search("c", rows[2], limit=5, offset=0, where=None)) is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert sorted(pk for pk, _ in found) == [2, 3]


def test_a_copy_read_for_a_dropped_collection_is_discarded():
    release = threading.Event()

    def slow_read(name):
        assert release.wait(10)
        index = ExactIndex()
        index.upsert([1], np.ones((1, 4), np.float32), [{}])
        return index

    copies = MemoryCopies(slow_read)
    copies.start_reading("c")
    copies.forget("c")
    release.set()
    for thread in threading.enumerate():
        if thread.name == "memory-copy-c":
            thread.join(10)
    assert copies.search("c", np.ones(4, np.float32), limit=1, offset=0, where=None) is None
