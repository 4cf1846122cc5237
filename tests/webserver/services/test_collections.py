"""Collections: the record claims the name, Milvus follows; deletes go rows first."""
import numpy as np
import pytest

from tests.images import sample_uploads as uploads
from webserver.errors import AlreadyExists, StoreUnavailable


def test_the_loser_of_two_concurrent_creates_leaves_the_winners_vectors(services, monkeypatch):
    services.collections.create("race")
    services.images.add("race", uploads(3))
    # The loser checked for the name before the winner's record was committed:
    monkeypatch.setattr(services.metadata, "get_collection", lambda name: None)
    with pytest.raises(AlreadyExists):
        services.collections.create("race")
    monkeypatch.undo()
    assert services.vectors.count("race") == 3 and services.metadata.count_images("race") == 3


def test_a_leftover_milvus_collection_of_another_dimension_is_not_reused(services):
    dimension = services.encoders.clip.dimension
    services.vectors.create_collection("leftover", dimension + 3)  # no record names it
    services.collections.create("leftover")
    added = services.images.add("leftover", uploads(2))
    assert len(added) == 2 and services.vectors.count("leftover") == 2
    vector = services.vectors.get_vectors("leftover", [added[0].id])[added[0].id]
    assert vector.shape == (dimension,) and np.isclose(np.linalg.norm(vector), 1, atol=1e-4)


def test_a_delete_that_fails_in_sql_leaves_the_vectors(services, monkeypatch):
    """Rows are the source of truth: they go first, so a failure there leaves a whole collection."""
    services.collections.create("kept")
    services.images.add("kept", uploads(2))

    def database_down(name):
        raise StoreUnavailable("The metadata database is unavailable (deleting a collection)")

    monkeypatch.setattr(services.metadata, "delete_collection", database_down)
    with pytest.raises(StoreUnavailable):
        services.collections.delete("kept")
    monkeypatch.undo()
    assert services.vectors.count("kept") == 2 and services.metadata.count_images("kept") == 2
