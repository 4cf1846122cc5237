"""The two stores stay consistent when one of them fails mid-write."""
import contextlib

import pytest

from tests.images import sample_uploads
from tests.servers import free_port
from webserver.errors import AlreadyExists, EncoderMismatch, NotFound, StoreUnavailable
from webserver.services.images import ImageService, Upload
from webserver.stores.metadata import MetadataStore
from webserver.stores.vectors import VectorStore


def uploads(count: int) -> list[Upload]:
    return sample_uploads(count)


def service_with(services, *, metadata=None, vectors=None) -> ImageService:
    return ImageService(collections=services.collections, metadata=metadata or services.metadata,
                        vectors=vectors or services.vectors, files=services.files,
                        max_bytes=10**7, max_pixels=10**7)


def test_a_failed_milvus_write_leaves_no_metadata_row(services):
    dead = VectorStore(f"http://127.0.0.1:{free_port()}", timeout_s=2)
    with pytest.raises(StoreUnavailable):
        service_with(services, vectors=dead).add("images", uploads(3))
    assert services.metadata.count_images("images") == 0
    assert services.images.add("images", uploads(3))[0].duplicate is False  # nothing half-written blocks it


class CommitFailsMetadata(MetadataStore):
    """The real SQLite store, but its transaction fails at commit (after the block ran)."""

    @contextlib.contextmanager
    def insert_images(self, collection, images):
        with super().insert_images(collection, images) as ids:
            yield ids
            raise StoreUnavailable("the metadata database went away at commit")


def test_a_failed_metadata_commit_removes_the_vectors_again(services):
    broken = CommitFailsMetadata(services.metadata.url)
    with pytest.raises(StoreUnavailable):
        service_with(services, metadata=broken).add("images", uploads(3))
    assert services.metadata.count_images("images") == 0
    assert services.vectors.count("images") == 0


def test_repeated_bytes_in_one_request_are_stored_once(services):
    one = uploads(1)[0]
    added = services.images.add("images", [one, one])
    assert added[0].id == added[1].id and [a.duplicate for a in added] == [False, True]
    assert services.vectors.count("images") == 1


def test_a_collection_made_by_another_encoder_is_refused(services):
    services.metadata.add_collection(name="old", encoder_id="open_clip/ViT-B-32/openai", dimension=512,
                                     metric="COSINE")
    with pytest.raises(EncoderMismatch, match="reindex.py --collection old"):
        services.images.add("old", uploads(1))
    assert [r.name for r in services.collections.mismatched()] == ["old"]


def test_losing_the_race_for_the_same_bytes_retries_once_then_says_so(services, monkeypatch):
    """Before, "retry once" recursed without bound while another writer kept winning."""
    attempts = []

    def always_beaten(*args):
        attempts.append(args)
        raise AlreadyExists("An image with the same bytes was inserted concurrently.")

    monkeypatch.setattr(services.images, "_write", always_beaten)
    with pytest.raises(AlreadyExists, match="send it again"):
        services.images.add("images", uploads(2))
    assert len(attempts) == 2


def test_an_upload_racing_the_collection_delete_is_404_not_a_retry(services, monkeypatch):
    """The rows' foreign key failed and was read as "the same bytes landed first": two retries, then 409."""
    services.collections.create("going")
    look_up = services.metadata.find_by_sha256

    def deleted_meanwhile(collection, digests):
        found = look_up(collection, digests)
        services.collections.delete("going")
        return found

    monkeypatch.setattr(services.metadata, "find_by_sha256", deleted_meanwhile)
    with pytest.raises(NotFound, match="deleted while"):
        services.images.add("going", uploads(1))
    monkeypatch.undo()
    assert not list(services.files.list_files())
