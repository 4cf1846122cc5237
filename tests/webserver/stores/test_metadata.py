import pytest

from tests.servers import free_port
from webserver.errors import AlreadyExists, StoreUnavailable
from webserver.stores.metadata import MetadataStore, NewImage


@pytest.fixture(params=["sqlite", "mariadb"])
def store(request, make_settings):
    settings = make_settings(metadata=request.param)
    settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
    store = MetadataStore(settings.metadata_url)
    store.create_schema()
    store.add_collection(name="c1", encoder_id="enc/a", dimension=4, metric="COSINE")
    yield store
    store.dispose()


def new_image(n: int, **overrides) -> NewImage:
    values = dict(sha256=f"{n:064x}", path=f"p/{n}.png", filename=f"{n}.png", caption=f"caption {n}",
                  meta={"label": "dress", "n": n}, width=28, height=28)
    values.update(overrides)
    return NewImage(**values)


def test_collections_round_trip_and_names_are_unique(store):
    record = store.get_collection("c1")
    assert (record.encoder_id, record.dimension, record.metric) == ("enc/a", 4, "COSINE")
    with pytest.raises(AlreadyExists):
        store.add_collection(name="c1", encoder_id="enc/b", dimension=8, metric="COSINE")
    store.set_collection_encoder("c1", encoder_id="enc/b", dimension=8, vector_layout=1)
    assert store.get_collection("c1").encoder_id == "enc/b"


def test_inserted_rows_commit_with_their_ids(store):
    with store.insert_images("c1", [new_image(1), new_image(2)]) as ids:
        assert len(set(ids)) == 2
    records = store.get_images(ids)
    assert records[ids[0]].meta == {"label": "dress", "n": 1}
    assert store.find_by_sha256("c1", [f"{1:064x}", f"{9:064x}"]) == {f"{1:064x}": ids[0]}
    assert [r.id for r in store.list_images("c1", limit=1, offset=1)] == [ids[1]]


def test_a_failure_inside_the_insert_block_leaves_no_row(store):
    with pytest.raises(RuntimeError), store.insert_images("c1", [new_image(1)]):
        raise RuntimeError("the vector write failed")
    assert store.count_images("c1") == 0


def test_the_same_bytes_twice_in_a_collection_is_refused(store):
    with store.insert_images("c1", [new_image(1)]):
        pass
    with pytest.raises(AlreadyExists), store.insert_images("c1", [new_image(1, path="other")]):
        pass
    assert store.count_images("c1") == 1


def test_ids_of_deleted_rows_are_not_reused(store):
    with store.insert_images("c1", [new_image(1), new_image(2)]) as first:
        pass
    with store.delete_images("c1", [first[1]]):
        pass
    with store.insert_images("c1", [new_image(3)]) as second:
        pass
    assert second[0] > first[1]


def test_ids_of_a_rolled_back_insert_are_not_reused(store):
    """Before, SQLite's AUTOINCREMENT counter rolled back with the insert: the next image, of any
    collection, got the id a stale Milvus vector of the failed write still carried."""
    with pytest.raises(RuntimeError), store.insert_images("c1", [new_image(1)]) as failed:
        raise RuntimeError("killed before the commit")
    store.add_collection(name="c2", encoder_id="enc/a", dimension=4, metric="COSINE")
    with store.insert_images("c2", [new_image(2)]) as later:
        pass
    assert later[0] > failed[0]


def test_import_ids_are_kept_only_where_never_handed_out(store):
    with store.insert_images("c1", [new_image(1), new_image(2)]) as first:
        pass
    wanted = [first[0], first[1] + 5, first[1] + 5, None]
    with store.insert_images("c1", [new_image(n) for n in (3, 4, 5, 6)], ids=wanted) as ids:
        pass
    assert ids[1] == first[1] + 5 and len(set(ids)) == 4 and min(ids[0], ids[2], ids[3]) > first[1] + 5
    assert store.next_id() > max(ids)


def test_a_file_is_released_only_by_its_last_row(store):
    store.add_collection(name="c2", encoder_id="enc/a", dimension=4, metric="COSINE")
    with store.insert_images("c1", [new_image(1)]) as in_c1:
        pass
    with store.insert_images("c2", [new_image(1), new_image(2)]):
        pass
    assert store.file_references() == {"p/1.png": 2, "p/2.png": 1}
    with store.delete_images("c1", in_c1) as released:
        assert released == []
    with store.delete_collection("c2") as released:
        assert sorted(released) == ["p/1.png", "p/2.png"]
    assert store.get_collection("c2") is None and store.count_images("c2") == 0
    assert store.file_references() == {}


def test_a_failed_delete_keeps_the_rows_and_references(store):
    with store.insert_images("c1", [new_image(1)]) as ids:
        pass
    with pytest.raises(RuntimeError), store.delete_images("c1", ids):
        raise RuntimeError("the vector delete failed")
    assert store.count_images("c1") == 1 and store.file_references() == {"p/1.png": 1}


def test_an_unreachable_mysql_is_reported_as_unavailable():
    store = MetadataStore(f"mysql+pymysql://app:x@127.0.0.1:{free_port()}/db")
    with pytest.raises(StoreUnavailable, match="metadata database is unavailable"):
        store.ping()


def test_two_deletes_of_one_row_release_its_file_once(store):
    """On MariaDB the second delete counted the row too (its subquery still saw the row while the first
    delete was uncommitted): the file kept one reference too few, and lost its bytes while still used."""
    import threading

    store.add_collection(name="c2", encoder_id="enc/a", dimension=4, metric="COSINE")
    with store.insert_images("c1", [new_image(1)]) as ids:
        pass
    with store.insert_images("c2", [new_image(1)]):
        pass

    def delete_again() -> None:
        with store.delete_images("c1", ids):
            pass

    with store.delete_images("c1", ids):
        second = threading.Thread(target=delete_again)
        second.start()
        second.join(timeout=1.0)  # it waits for this delete's commit
    second.join()
    assert store.file_references() == {"p/1.png": 1}
