"""What one thread sends to Redis inside `together()` goes in one round trip per server.

A commit's effects went to Redis in separate round trips: its events (a PUBLISH), then its
ready steps (the broker's enqueue scripts and wake-ups). On loopback each round trip costs
more CPU (system calls, a context switch each way) than the commands themselves, and the
outbox thread sends effects for every commit of a server or a worker. Inside `together()`,
`RedisPublisher.publish` and the broker's enqueues join this thread's open round trip, which
the outermost `together()` sends as one pipeline when it ends.

Order in the pipeline: publishes (the events), then scripts (the enqueues), then wake-ups.
A wake-up must follow the messages it announces, or a consumer fetches too early and waits.
Scripts go by their hash (EVALSHA): redis-py's pipelined scripts ask SCRIPT EXISTS first, a
round trip of its own every time. A Redis that lost its scripts (restarted, SCRIPT FLUSH)
answers NOSCRIPT without running the script; those are sent again once it is loaded, so
nothing runs twice.

Thread-local: another thread's sends (Dramatiq's own, say) are never held back by this one.
"""

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import redis
from redis.commands.core import Script


def server_of(client: Any) -> tuple[Any, ...]:
    """Which server and database a client talks to (a round trip serves one)."""
    kwargs = client.connection_pool.connection_kwargs
    return (kwargs.get("host"), kwargs.get("port"), kwargs.get("path"), kwargs.get("db", 0))


class RoundTrip:
    """Commands for one server and database, sent together by `send`."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.publishes: list[tuple[str, bytes | str]] = []
        self.scripts: list[tuple[Script, Sequence[Any], Sequence[Any]]] = []
        self.wakes: dict[str, bytes] = {}

    def publish(self, channel: str, payload: bytes | str) -> None:
        self.publishes.append((channel, payload))

    def script(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> None:
        self.scripts.append((script, keys, args))

    def wake(self, channel: str, payload: bytes) -> None:
        """A PUBLISH after every script, once per channel however many scripts it announces."""
        self.wakes[channel] = payload

    def send(self) -> None:
        """One pipeline; raises the first error a command answered (after all ran)."""
        pending = self.scripts
        first = True
        for _ in range(2):
            pipe = self.client.pipeline(transaction=False)
            for channel, payload in self.publishes if first else ():
                pipe.publish(channel, payload)
            for script, keys, args in pending:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            for channel, payload in self.wakes.items():
                pipe.publish(channel, payload)
            results = pipe.execute(raise_on_error=False)
            if first:
                results = results[len(self.publishes) :]
            lost = [s for s, r in zip(pending, results, strict=False) if _no_script(r)]
            failed = [r for r in results if isinstance(r, Exception) and not _no_script(r)]
            if failed:
                raise failed[0]
            if not lost:
                return
            for script in {id(s[0]): s[0] for s in lost}.values():
                self.client.script_load(script.script)
            pending, first = lost, False
        raise redis.exceptions.NoScriptError("a script could not be loaded")


def _no_script(result: object) -> bool:
    return isinstance(result, redis.exceptions.NoScriptError)


_open = threading.local()


@contextlib.contextmanager
def together() -> Iterator[None]:
    """Collect this thread's sends; the outermost call sends them when its body succeeds."""
    if getattr(_open, "trips", None) is not None:
        yield  # an outer `together()` sends
        return
    trips: dict[tuple[Any, ...], RoundTrip] = {}
    _open.trips = trips
    try:
        yield
    finally:
        _open.trips = None
    errors: list[Exception] = []
    for trip in trips.values():
        try:
            trip.send()
        except Exception as exc:  # the other servers' commands still go
            errors.append(exc)
    if errors:
        raise errors[0]


def joining(client: Any) -> RoundTrip | None:
    """This thread's open round trip to `client`'s server and database, or None outside
    `together()`."""
    trips: dict[tuple[Any, ...], RoundTrip] | None = getattr(_open, "trips", None)
    if trips is None:
        return None
    key = server_of(client)
    trip = trips.get(key)
    if trip is None:
        trip = trips[key] = RoundTrip(client)
    return trip
