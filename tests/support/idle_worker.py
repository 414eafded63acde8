"""How often an idle Dramatiq worker looks at Redis."""

import time
from typing import Any

from workers.wakeup import QuietWorker, stop_promptly


def fetches_while_idle(broker: Any, *, worker_timeout: int, seconds: float) -> int:
    """The fetches from Redis of an idle two-thread worker on `broker` over `seconds`, counted
    from half a second after it started. Stops the worker and closes the broker."""
    fetches = 0
    fetch = broker.do_fetch

    def counting(*args: object) -> object:
        nonlocal fetches
        fetches += 1
        return fetch(*args)

    broker.do_fetch = counting
    worker = QuietWorker(broker, worker_threads=2, worker_timeout=worker_timeout)
    worker.start()
    try:
        time.sleep(0.5)
        before = fetches
        time.sleep(seconds)
        return fetches - before
    finally:
        stop_promptly(worker)
        broker.close()
