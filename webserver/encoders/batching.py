"""Concurrent queries encoded together: one forward pass for every query waiting, not one each.

A search encodes one text, one image or one (image, text) pair; on a CPU a forward pass over eight inputs
costs far less than eight passes. A `MicroBatcher` has one thread of its own: it takes the first waiting
call, collects the calls that arrive within `window_s` (up to `max_batch`), runs the batch function once
over all of them and hands each caller its own row. While a pass runs, new calls queue, so under load the
batches grow by themselves. The encoders compute each row independently of the others (per-row
normalization, causal text towers, TIRG's LSTM read at each text's own length), so a call's result is the
one it gets alone (tests/webserver/encoders/test_batching.py).
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    def __init__(self, run_batch: Callable[[list[T]], Iterable[R]], *, window_s: float = 0.002,
                 max_batch: int = 32, name: str = "micro-batcher"):
        self._run_batch = run_batch
        self.window_s = window_s
        self.max_batch = max_batch
        self.batch_sizes: list[int] = []  # recent batch sizes, for tests and benchmarks
        self._queue: queue.SimpleQueue[tuple[T, Future] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def __call__(self, item: T) -> R:
        """The batch function's row for `item` (its exception, if its row failed)."""
        future: Future = Future()
        self._queue.put((item, future))
        return future.result()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _serve(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.window_s
            while len(batch) < self.max_batch:
                try:
                    waiting = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if waiting is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                batch.append(waiting)
            self.batch_sizes = [*self.batch_sizes[-999:], len(batch)]
            self._run(batch)

    def _run(self, batch: list[tuple[T, Future]]) -> None:
        try:
            results = list(self._run_batch([item for item, _ in batch]))
            if len(results) != len(batch):
                raise RuntimeError(f"the batch function answered {len(results)} rows for {len(batch)} inputs")
        except BaseException as exc:  # noqa: BLE001 - handed to the callers; this thread must live on
            if len(batch) == 1:
                batch[0][1].set_exception(exc)
                return
            for one in batch:  # one bad input must not fail the others: each alone, to find whose it was
                self._run([one])
            return
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)
