"""Writes held up by concurrent writes (a deadlock, a lock timeout) succeed when run again."""
from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from webserver.errors import Contention

T = TypeVar("T")


def retry_contention(write: Callable[[], T], attempts: int = 4) -> T:
    """`write()`, run again after a short random pause while it raises Contention (at most `attempts`)."""
    for attempt in range(attempts):
        try:
            return write()
        except Contention:
            if attempt == attempts - 1:
                raise
            time.sleep(random.uniform(0.005, 0.02) * 2 ** attempt)
    raise AssertionError("unreachable")
