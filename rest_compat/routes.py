"""The documented REST surface under /tasker (filled in by the REST compatibility layer)."""

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
