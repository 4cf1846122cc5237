"""Model work on its own bounded executor (the immich machine-learning service's pattern).

Routes that decode, encode or compose (uploads, searches) are `async` and hand their work to one small
thread pool per app, `MODEL_WORKERS` threads. A burst of them queues there instead of taking every thread
of the request pool, so /healthz, /metrics and plain reads keep answering at once.
"""
from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class ModelWork:
    def __init__(self, workers: int, name: str = "model-work"):
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
