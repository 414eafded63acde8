"""Composition root: `create_app()` builds the ASGI app for `tasker serve` and the tests."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from server.assets import VENDOR
from server.config import Settings
from server.container import Services, build_services
from server.infra.gc_tuning import freeze_startup_objects
from server.infra.logging import RequestIdMiddleware, redact_access_log
from server.infra.metrics import HttpMetricsMiddleware
from server.infra.ports import NullDispatcher
from workers.pool import WorkerPool
from workers.runtime import LoopRuntime

log = logging.getLogger(__name__)


async def live(_request: Request) -> Response:
    """The process is up (no dependencies checked)."""
    return JSONResponse({"status": "alive"}, headers={"Cache-Control": "no-store"})


def _routes(services: Services) -> list[BaseRoute]:
    import graphql_schema.app
    import rest_compat.observability
    import rest_compat.routes

    observability = rest_compat.observability.routes or [
        Route("/tasker/health/live", live, methods=["GET"])
    ]
    from swagger_ui_bundle import swagger_ui_path

    # The pages' vendored scripts ship inside the package, whatever TASKER_STATIC_DIR says.
    vendor = (
        [Mount("/tasker/static/vendor", StaticFiles(directory=VENDOR))] if VENDOR.is_dir() else []
    )
    static = [
        Mount("/tasker/static/swagger-ui", StaticFiles(directory=swagger_ui_path), name="swagger"),
        *vendor,
        Mount(
            "/tasker/static",
            StaticFiles(directory=services.settings.static_dir, check_dir=False),
            name="static",
        ),
    ]
    import server.console.routes  # web console at /tasker/ui

    # GraphQL first: Starlette tries routes in order, and the REST table ahead of it cost
    # every GraphQL request some thirty path matches (no REST path matches /tasker/graphql).
    return [
        *graphql_schema.app.routes(services),
        *rest_compat.routes.routes,
        *observability,
        *server.console.routes.routes,  # the console page and its static files
        *static,
    ]


def create_app(settings: Settings | None = None, services: Services | None = None) -> Starlette:
    """The Tasker ASGI app; adapters find the core at `request.app.state.services`.

    Given `services`, the caller owns their lifecycle (tests do). Otherwise the lifespan opens
    the database and, with no broker URL, runs the step workers in this process (embedded
    mode); with a broker URL it only dispatches to Redis and listens for events there, and
    `tasker worker` processes run the steps.
    """
    settings = settings or (services.settings if services else Settings())
    owned = services is None
    redact_access_log()  # however the server was started (tasker serve, uvicorn --factory)
    core = services or build_services(settings, NullDispatcher())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not owned:
            yield
            return
        await core.open()
        pool = WorkerPool(
            core, LoopRuntime(asyncio.get_running_loop()), threads=settings.embedded_worker_threads
        )
        listener = None
        if settings.broker_url:
            from server.infra.pubsub import RedisListener
            from server.services import queries

            listener = asyncio.create_task(
                RedisListener(
                    settings.broker_url,
                    core.hub,
                    queries.events_since,
                    wanted=lambda: core.hub.subscriber_count > 0,
                ).run()
            )
            # Servers fire cron ticks too, so schedules outlive every worker being down.
            pool.start_background(firing_only=True)
        else:
            pool.start_consuming()
            pool.start_background()
        if settings.freeze_heap:
            freeze_startup_objects()
        try:
            yield
        finally:
            if listener is not None:
                listener.cancel()
                await pool.stop_background()
            else:
                await pool.stop_background()
                await asyncio.to_thread(pool.stop_consuming)
            await core.close()

    # REST compatibility layer: the error envelope on every non-2xx (masked 500s
    # included), request ids, and the request body cap.
    import rest_compat.errors
    import rest_compat.middleware
    import server.auth.browser as browser
    import server.auth.middleware as security

    # Outermost first: HTTP metrics (they see every answer, refusals included), the Host /
    # Content-Type / Origin guard, CORS (it answers preflights), the request id, header caps /
    # tokens / rate limits / security headers, then the body cap and the masked 500.
    app = Starlette(
        routes=_routes(core),
        lifespan=lifespan,
        middleware=[
            Middleware(HttpMetricsMiddleware),
            browser.middleware(core.settings),
            *security.cors(core.settings),
            Middleware(RequestIdMiddleware),
            security.middleware(core.auth, core.settings),
            *rest_compat.middleware.middleware(settings.max_body_bytes),
        ],
        exception_handlers=rest_compat.errors.exception_handlers,
    )
    app.state.services = core
    return app
