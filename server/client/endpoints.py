"""The client methods, one line each, shared by the sync and the async client.

Each endpoint is a builder in `calls` with the method's public signature and docstring,
returning the `Call` it makes typed by what the call returns. `Endpoint` turns a builder into a
method: on a `TaskerClient` it sends the call and returns the value; on an `AsyncTaskerClient`
it returns a coroutine of the value. Type checkers see the builder's parameters (ParamSpec) and
the right return type for either client, so adding an endpoint is one builder in `calls` and
one line in `Endpoints`. Only the methods whose control flow differs (polling, paging,
streaming) are written in each client.
"""

import functools
from collections.abc import Callable, Coroutine
from typing import Any, Generic, ParamSpec, Protocol, Self, TypeVar, overload

from server.client import calls
from server.client.transport import AsyncTransport, Call, SyncTransport

P = ParamSpec("P")
R = TypeVar("R")


class _SyncClient(Protocol):
    @property
    def _t(self) -> SyncTransport: ...


class _AsyncClient(Protocol):
    @property
    def _t(self) -> AsyncTransport: ...


class Endpoint(Generic[P, R]):
    """A method that builds a `Call` with `build` and sends it with the client's transport."""

    def __init__(self, build: Callable[P, Call[R]]) -> None:
        self.build = build
        self.name = build.__name__
        self.__doc__ = build.__doc__

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.name = name

    @overload
    def __get__(self, client: None, owner: type[Any]) -> Self: ...

    @overload
    def __get__(
        self, client: _AsyncClient, owner: type[Any]
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...

    @overload
    def __get__(self, client: _SyncClient, owner: type[Any]) -> Callable[P, R]: ...

    def __get__(self, client: Any, owner: type[Any]) -> Any:
        if client is None:
            return self
        transport = client._t
        build = self.build
        method: Callable[..., Any]
        if isinstance(transport, AsyncTransport):

            async def method(*args: Any, **kwargs: Any) -> Any:
                return await transport.send(build(*args, **kwargs))

        else:

            def method(*args: Any, **kwargs: Any) -> Any:
                return transport.send(build(*args, **kwargs))

        functools.update_wrapper(method, build)  # name, docstring and signature for help()
        method.__name__ = method.__qualname__ = self.name
        return method


class Endpoints:
    """Every plain request of the REST API (and GraphQL), as methods of both clients."""

    # --- handler discovery ---
    namespaces = Endpoint(calls.namespaces)
    handlers = Endpoint(calls.handlers)
    handler = Endpoint(calls.handler)

    # --- tasks ---
    create_task = Endpoint(calls.create_task)
    create_tasks = Endpoint(calls.create_tasks)
    list_tasks = Endpoint(calls.list_tasks)
    get_task = Endpoint(calls.get_task)
    update_task = Endpoint(calls.update_task)
    cancel_task = Endpoint(calls.cancel_task)
    retry_task = Endpoint(calls.retry_task)
    pause_task = Endpoint(calls.pause_task)
    resume_task = Endpoint(calls.resume_task)
    pause_handler = Endpoint(calls.pause_handler)
    resume_handler = Endpoint(calls.resume_handler)
    rerun_task = Endpoint(calls.rerun_task)
    bulk_cancel_tasks = Endpoint(calls.bulk_cancel_tasks)
    bulk_retry_tasks = Endpoint(calls.bulk_retry_tasks)
    bulk_rerun_tasks = Endpoint(calls.bulk_rerun_tasks)
    get_task_diagram = Endpoint(calls.get_task_diagram)

    # --- workflow steps ---
    list_steps = Endpoint(calls.list_steps)
    get_step = Endpoint(calls.get_step)
    list_step_items = Endpoint(calls.list_step_items)
    update_step = Endpoint(calls.update_step)
    cancel_step = Endpoint(calls.cancel_step)
    retry_step = Endpoint(calls.retry_step)
    resolve_step = Endpoint(calls.resolve_step)
    send_signal = Endpoint(calls.send_signal)

    # --- schedules ---
    list_schedules = Endpoint(calls.list_schedules)
    get_schedule = Endpoint(calls.get_schedule)
    create_schedule = Endpoint(calls.create_schedule)
    update_schedule = Endpoint(calls.update_schedule)
    pause_schedule = Endpoint(calls.pause_schedule)
    resume_schedule = Endpoint(calls.resume_schedule)
    delete_schedule = Endpoint(calls.delete_schedule)

    # --- analytics, health, metrics ---
    performance_analytics = Endpoint(calls.performance_analytics)
    bottleneck_analysis = Endpoint(calls.bottleneck_analysis)
    health_status = Endpoint(calls.health_status)
    health_ready = Endpoint(calls.health_ready)
    health_live = Endpoint(calls.health_live)
    metrics = Endpoint(calls.metrics)

    # --- GraphQL ---
    graphql = Endpoint(calls.graphql)
