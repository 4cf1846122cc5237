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
    with store.delete_images([first[1]]):
        pass
    with store.insert_images("c1", [new_image(3)]) as second:
        pass
    assert second[0] > first[1]


def test_deleting_a_collection_returns_its_files(store):
    with store.insert_images("c1", [new_image(1)]):
        pass
    assert store.delete_collection("c1") == [(f"{1:064x}", "p/1.png")]
    assert store.get_collection("c1") is None and store.count_images("c1") == 0


def test_an_unreachable_mysql_is_reported_as_unavailable():
    store = MetadataStore(f"mysql+pymysql://app:x@127.0.0.1:{free_port()}/db")
    with pytest.raises(StoreUnavailable, match="metadata database is unavailable"):
        store.ping()
