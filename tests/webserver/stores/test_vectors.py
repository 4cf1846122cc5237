import subprocess
import sys
import time

import numpy as np
import pytest

from tests.servers import free_port
from webserver.errors import InvalidInput, NotFound, StoreUnavailable
from webserver.stores.vectors import DataDirLocked, IndexSettings, VectorStore, build_filter


@pytest.fixture(params=["lite", "server", "standalone"])
def store(request, make_settings):
    settings = make_settings(milvus=request.param)
    settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
    store = VectorStore(settings.milvus_uri)
    store.create_collection(settings.MILVUS_TABLE, 8)
    yield store, settings.MILVUS_TABLE
    store.drop_collection(settings.MILVUS_TABLE)
    store.close()


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture
def filled(store):
    vectors, name = store
    data = unit(np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32))
    metas = [{"label": "dress" if i % 2 else "shoe", "n": i, "odd": bool(i % 2)} for i in range(20)]
    vectors.upsert(name, list(range(1, 21)), data, metas)
    return vectors, name, data


def test_writes_are_visible_at_once_and_search_ranks_by_cosine(filled):
    vectors, name, data = filled
    assert vectors.count(name) == 20
    hits = vectors.search(name, data[4], limit=5)
    assert hits[0].id == 5 and hits[0].score == pytest.approx(1.0, abs=1e-5)
    expected = np.argsort(-(data @ data[4]))[:5] + 1
    assert [h.id for h in hits] == list(expected)


def test_filters_and_exclusion_run_inside_milvus(filled):
    vectors, name, data = filled
    hits = vectors.search(name, data[1], limit=20, where=build_filter({"label": "dress"}, exclude_id=2))
    assert {h.id for h in hits} == {i + 1 for i in range(20) if i % 2} - {2}
    assert {h.id for h in vectors.search(name, data[0], limit=20, where=build_filter({"n": 3}))} == {4}
    assert len(vectors.search(name, data[0], limit=20, where=build_filter({"odd": False}))) == 10


def test_quotes_in_filter_values_stay_literal(filled):
    vectors, name, data = filled
    injection = build_filter({"label": 'x" or meta["n"] >= 0 or meta["label"] == "y'})
    assert vectors.search(name, data[0], limit=20, where=injection) == []


def test_upsert_replaces_and_delete_removes(filled):
    vectors, name, data = filled
    vectors.upsert(name, [1], data[1:2], [{}])
    assert vectors.count(name) == 20
    np.testing.assert_allclose(vectors.get_vectors(name, [1])[1], data[1], atol=1e-6)
    vectors.delete(name, [1, 2])
    assert vectors.count(name) == 18


@pytest.mark.parametrize("bad", [{"a b": 1}, {"k": [1]}, {"k": {"x": 1}}, {"k": "\n"}, {"k": float("nan")},
                                 {f"k{i}": i for i in range(17)}])
def test_bad_filters_are_refused(bad):
    with pytest.raises(InvalidInput):
        build_filter(bad)


def test_a_dead_server_is_unavailable_quickly():
    store = VectorStore(f"http://127.0.0.1:{free_port()}", timeout_s=2)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        store.ping()
    assert time.monotonic() - started < 15


def test_a_lite_file_held_by_another_process_is_named_as_such(tmp_path):
    path = tmp_path / "milvus.db"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pymilvus import MilvusClient; "
        f"MilvusClient({str(path)!r}).list_collections(); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DataDirLocked, match="held by another process"):
            VectorStore(str(path)).ping()
    finally:
        holder.kill()


def test_a_request_milvus_refuses_is_the_callers_error_not_an_outage(filled):
    """Before, every Milvus exception read as "Milvus is down" (503) and reset the client."""
    vectors, name, _ = filled
    client = vectors.client
    with pytest.raises(InvalidInput, match="Milvus rejected the request"):
        vectors.upsert(name, [99], np.ones((1, 16), np.float32), [{}])  # the collection's dimension is 8
    with pytest.raises(NotFound, match="no such collection"):
        vectors.search("never_made", np.ones(8, np.float32), limit=3)
    assert vectors.client is client and vectors.count(name) == 20


@pytest.mark.parametrize("milvus", ["lite", "standalone"])
def test_index_settings_shape_new_collections_and_searches_follow_each_collections_index(make_settings, milvus):
    """MILVUS_INDEX_TYPE and friends build new collections; a collection made under other settings is
    searched with its own index's parameters (before: the store sent HNSW's ef to any index)."""
    settings = make_settings(milvus=milvus)
    settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
    data = unit(np.random.default_rng(1).normal(size=(64, 8)).astype(np.float32))
    ivf = VectorStore(settings.milvus_uri, index=IndexSettings(index_type="IVF_FLAT", ivf_nlist=4, ivf_nprobe=4))
    ivf.create_collection("made_ivf", 8)
    ivf.upsert("made_ivf", list(range(1, 65)), data, [{}] * 64)
    ivf.flush("made_ivf")
    ivf.close()
    hnsw = VectorStore(settings.milvus_uri, index=IndexSettings(index_type="HNSW", hnsw_m=8, ef_construction=32,
                                                                search_ef=16))
    hnsw.create_collection("made_hnsw", 8)
    assert hnsw.index_type_of("made_ivf") == "IVF_FLAT" and hnsw.index_type_of("made_hnsw") == "HNSW"
    assert hnsw.index.search_params("IVF_FLAT", 10, is_server=hnsw.is_server) == {"nprobe": 16}
    assert hnsw.index.search_params("HNSW", 40, is_server=hnsw.is_server) == {"ef": 40}  # at least the depth
    if milvus == "standalone":
        params = hnsw.client.describe_index("made_hnsw", "vector")
        assert (str(params.get("M")), str(params.get("efConstruction"))) == ("8", "32"), params
    hits = hnsw.search("made_ivf", data[7], limit=5)
    assert hits[0].id == 8
    for name in ("made_ivf", "made_hnsw"):
        hnsw.drop_collection(name)
    hnsw.close()


@pytest.mark.parametrize("milvus, flushes", [("lite", 2), ("server", 0)])
def test_only_the_embedded_store_flushes_by_itself(make_settings, monkeypatch, milvus, flushes):
    """A flush seals a segment: on a Milvus server a flush every few thousand rows left many small
    segments, 2-4x slower to search than the server's own sealing (scripts/bench_scale.py)."""
    from webserver.stores import vectors as module

    monkeypatch.setattr(module, "FLUSH_EVERY_ROWS", 4)
    settings = make_settings(milvus=milvus)
    settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
    store = VectorStore(settings.milvus_uri)
    store.create_collection(settings.MILVUS_TABLE, 8)
    calls = []
    monkeypatch.setattr(store, "flush", lambda name: calls.append(name))
    data = unit(np.random.default_rng(2).normal(size=(8, 8)).astype(np.float32))
    for start in (0, 4):
        store.upsert(settings.MILVUS_TABLE, list(range(start + 1, start + 5)), data[start:start + 4], [{}] * 4)
    assert len(calls) == flushes
    store.drop_collection(settings.MILVUS_TABLE)
    store.close()
