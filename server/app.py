"""Composition root: `create_app()` builds the ASGI app for `tasker serve` and the tests."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from server.config import Settings
from server.container import Services, build_services
from server.services.ports import NullDispatcher
from workers.pool import WorkerPool
from workers.runtime import LoopRuntime

log = logging.getLogger(__name__)


async def live(_request: Request) -> Response:
    """The process is up (no dependencies checked)."""
    return JSONResponse({"status": "alive"}, headers={"Cache-Control": "no-store"})


def _routes(services: Services) -> list[BaseRoute]:
    routes: list[BaseRoute] = [Route("/tasker/health/live", live, methods=["GET"])]
    return routes


def create_app(
    settings: Settings | None = None,
    services: Services | None = None,
    *,
    embedded_workers: bool | None = None,
) -> Starlette:
    """The Tasker ASGI app.

    With no broker URL the server runs its own workers (embedded mode); with one it only
    dispatches to Redis and listens for events there, and `tasker worker` processes run steps.
    """
    settings = settings or Settings()
    services = services or build_services(settings, NullDispatcher())
    run_workers = not settings.broker_url if embedded_workers is None else embedded_workers

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await services.open()
        pool = WorkerPool(
            services,
            LoopRuntime(asyncio.get_running_loop()),
            threads=settings.embedded_worker_threads,
        )
        listener_task = None
        if settings.broker_url:
            from server.pubsub import RedisListener

            listener_task = asyncio.create_task(RedisListener(settings.broker_url, services.hub).run())
        if run_workers:
            pool.start_consuming()
            pool.start_background()
        app.state.services = services
        try:
            yield
        finally:
            if run_workers:
                await pool.stop_background()
                await asyncio.to_thread(pool.stop_consuming)
            if listener_task is not None:
                listener_task.cancel()
            await services.close()

    return Starlette(routes=_routes(services), lifespan=lifespan)
