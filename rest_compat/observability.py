"""Analytics, health and metrics endpoints (filled in by the observability work)."""

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
