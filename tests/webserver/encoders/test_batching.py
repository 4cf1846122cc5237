"""Concurrent queries share a forward pass, and each gets the row it would get alone."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.images import sample_images
from webserver.encoders.batching import MicroBatcher

TEXTS = ["a dress", "a red sneaker with white laces", "make top-left red object blue", "bag",
         "an ankle boot on a wooden floor, photographed from the side", "a shirt", "trousers", "a coat"]


def concurrently(batcher: MicroBatcher, items: list) -> list:
    with ThreadPoolExecutor(len(items)) as pool:
        return list(pool.map(batcher, items))


@pytest.fixture
def batched():
    made = []

    def make(run_batch, **options):
        made.append(MicroBatcher(run_batch, **{"window_s": 0.2, "max_batch": 32, **options}))
        return made[-1]

    yield make
    for batcher in made:
        batcher.close()


def test_concurrent_texts_are_encoded_together_each_as_it_would_be_alone(batched, encoder):
    batcher = batched(encoder.encode_texts)
    together = concurrently(batcher, TEXTS)
    assert max(batcher.batch_sizes) > 1, batcher.batch_sizes  # a shared forward pass happened
    alone = [encoder.encode_texts([text])[0] for text in TEXTS]
    np.testing.assert_allclose(np.stack(together), np.stack(alone), atol=1e-5)


def test_concurrent_images_are_encoded_together_each_as_it_would_be_alone(batched, encoder):
    images = [image for image, _ in sample_images(8)]
    batcher = batched(encoder.encode_images)
    together = concurrently(batcher, images)
    assert max(batcher.batch_sizes) > 1
    np.testing.assert_allclose(np.stack(together), encoder.encode_images(images), atol=1e-5)


def test_composed_queries_with_texts_of_different_lengths_are_those_alone(batched, tirg_encoder):
    """TIRG's LSTM reads each text at its own length, so padding to the batch's longest changes nothing."""
    pairs = list(zip([image for image, _ in sample_images(8)], TEXTS, strict=True))
    batcher = batched(lambda items: tirg_encoder.compose([i for i, _ in items], [t for _, t in items]))
    together = concurrently(batcher, pairs)
    assert max(batcher.batch_sizes) > 1
    alone = [tirg_encoder.compose([image], [text])[0] for image, text in pairs]
    np.testing.assert_allclose(np.stack(together), np.stack(alone), atol=1e-5)


def test_a_failing_input_fails_only_its_own_caller(batched):
    def double(items):
        if "bad" in items:
            raise ValueError("bad input")
        return [item * 2 for item in items]

    batcher = batched(double)
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(batcher, item) for item in ("a", "bad", "c", "d")]
    assert [f.result() for f in (futures[0], futures[2], futures[3])] == ["aa", "cc", "dd"]
    with pytest.raises(ValueError, match="bad input"):
        futures[1].result()


def test_a_batch_function_answering_too_few_rows_is_an_error_and_the_batcher_lives_on(batched):
    answers = iter([[], ["x"]])
    batcher = batched(lambda items: next(answers), window_s=0.0)
    with pytest.raises(RuntimeError, match="0 rows for 1 inputs"):
        batcher("first")
    assert batcher("second") == "x"
