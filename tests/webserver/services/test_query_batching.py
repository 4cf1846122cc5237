"""Searches running at once share forward passes (QUERY_BATCH_*), and answer as each does alone."""
import contextlib
from concurrent.futures import ThreadPoolExecutor

from tests.images import sample_uploads
from webserver.services.container import build_services
from webserver.services.search import SearchQuery

TEXTS = ["a dress", "a sneaker", "a bag with a long strap", "trousers", "an ankle boot", "a shirt"]


@contextlib.contextmanager
def services_with_images(make_settings, encoders, count: int, **settings):
    services = build_services(make_settings(**settings), encoders)
    try:
        services.metadata.create_schema()
        services.collections.ensure("images")
        services.images.add("images", sample_uploads(count))
        yield services
    finally:
        services.close()


def test_concurrent_searches_are_batched_and_answer_as_each_alone(make_settings, encoders):
    with services_with_images(make_settings, encoders, 16, QUERY_BATCH_WINDOW_MS=100) as services:
        queries = [SearchQuery("images", text=t, top_k=5) for t in TEXTS]
        with ThreadPoolExecutor(len(queries)) as pool:
            together = list(pool.map(services.search.search, queries))
        assert max(services.search.batching.batch_sizes()["text"]) > 1
        alone = [services.search.search(query) for query in queries]
    for shared, single in zip(together, alone, strict=True):
        assert [hit.record.id for hit in shared.hits] == [hit.record.id for hit in single.hits]
        assert all(abs(a.score - b.score) < 1e-5 for a, b in zip(shared.hits, single.hits, strict=True))


def test_query_batch_max_1_encodes_each_query_alone(make_settings, encoders):
    with services_with_images(make_settings, encoders, 4, QUERY_BATCH_MAX=1) as services:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(services.search.search, [SearchQuery("images", text=t) for t in TEXTS[:4]]))
        assert services.search.batching.batch_sizes() == {}  # no batcher was made
