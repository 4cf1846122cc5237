"""reindex builds the new vectors beside the old ones and switches only when done."""
import pytest
import sqlalchemy as sa

from tests.images import sample_uploads
from webserver.errors import EncoderMismatch
from webserver.services.container import build_services
from webserver.services.maintenance import reindex
from webserver.stores.vectors import VECTOR_LAYOUT


@pytest.fixture(params=["lite", "server", "standalone"])
def services(request, make_settings, encoders):
    services = build_services(make_settings(milvus=request.param), encoders)
    services.metadata.create_schema()
    services.collections.ensure("images")
    services.images.add("images", sample_uploads(6))
    yield services
    services.close()


def test_a_missing_file_is_skipped_and_reported(services):
    """Before, the first missing file aborted the run after the vectors had been dropped."""
    rows = services.metadata.list_images("images", limit=10, offset=0)
    services.files.remove(rows[2].path)
    report = reindex(services, "images", batch_size=4)
    assert report.encoded == 5 and [image_id for image_id, _ in report.missing] == [rows[2].id]
    assert services.vectors.count("images") == 5
    hits = services.vectors.search("images", services.vectors.get_vectors("images", [rows[0].id])[rows[0].id],
                                   limit=1)
    assert hits[0].id == rows[0].id


def test_an_interrupted_reindex_leaves_the_old_vectors_searchable(services, monkeypatch):
    """Before, the old vectors were dropped first: a failure left nothing searchable."""
    encoder = services.encoders.clip
    calls = []

    def fails_on_the_second_batch(images):
        calls.append(len(images))
        if len(calls) == 2:
            raise RuntimeError("killed")
        return type(encoder).encode_images(encoder, images)

    monkeypatch.setattr(encoder, "encode_images", fails_on_the_second_batch)
    with pytest.raises(RuntimeError, match="killed"):
        reindex(services, "images", batch_size=4)
    monkeypatch.undo()
    assert services.vectors.count("images") == 6
    assert reindex(services, "images", batch_size=4).encoded == 6  # the next run starts the build over
    assert services.vectors.count("images") == 6


def test_a_collection_of_an_older_vector_layout_is_refused_until_reindexed(services):
    with services.metadata.engine.begin() as conn:
        conn.execute(sa.text("UPDATE collections SET vector_layout = 0 WHERE name = 'images'"))
    with pytest.raises(EncoderMismatch, match="Milvus layout 0.*reindex.py --collection images"):
        services.collections.require_servable("images")
    assert [record.name for record in services.collections.mismatched()] == ["images"]
    reindex(services, "images")
    services.collections.require_servable("images")
    assert services.collections.get_record("images").vector_layout == VECTOR_LAYOUT
