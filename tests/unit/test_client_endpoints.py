"""The sync and async clients share one table of endpoints (`server.client.endpoints`)."""

import inspect

from server.client import AsyncTaskerClient, TaskerClient, calls
from server.client.endpoints import Endpoint, Endpoints

NAMES = [name for name, value in vars(Endpoints).items() if isinstance(value, Endpoint)]


def test_every_endpoint_is_a_method_of_both_clients_with_the_builders_signature() -> None:
    assert len(NAMES) == 41
    sync, aio = TaskerClient("http://127.0.0.1:1"), AsyncTaskerClient("http://127.0.0.1:1")
    for name in NAMES:
        build = getattr(calls, name)
        for method in (getattr(sync, name), getattr(aio, name)):
            assert method.__name__ == name
            assert method.__doc__ == build.__doc__ and build.__doc__
            assert inspect.signature(method) == inspect.signature(build)
        assert inspect.iscoroutinefunction(getattr(aio, name))
        assert not inspect.iscoroutinefunction(getattr(sync, name))
    sync.close()
