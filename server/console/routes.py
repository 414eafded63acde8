"""Routes serving the web console: `/tasker/ui` (the page) and `/tasker/ui/static/*`.

The console is plain HTML, CSS and JavaScript modules (no build step, nothing fetched from the
internet): it talks to the server only through the public GraphQL API, with the user's token.
Mermaid comes from the vendored assets (`server.assets`); without them the graphs fall back to
a plain drawing of their own.
"""

import functools
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from server.assets import VENDOR, asset_url

STATIC = Path(__file__).resolve().parent / "static"
PATH = "/tasker/ui"
# The page itself must never be cached stale; the modules it loads carry a version query.
NO_STORE = {"Cache-Control": "no-store"}


@functools.cache
def _page(mermaid: str) -> str:
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    return html.replace("{{MERMAID_URL}}", mermaid)


async def console(_request: Request) -> Response:
    """The single page; navigation inside it happens in the URL's fragment (#/tasks/...)."""
    local = (VENDOR / "mermaid.min.js").exists()
    # Offline and without the vendored copy, a CDN URL would only fail slowly: leave it out.
    return HTMLResponse(_page(asset_url("mermaid.min.js") if local else ""), headers=NO_STORE)


async def console_slash(_request: Request) -> Response:
    return RedirectResponse(PATH, status_code=308)


routes: list[BaseRoute] = [
    Route(PATH, console, methods=["GET"]),
    Route(f"{PATH}/", console_slash, methods=["GET"]),
    Mount(f"{PATH}/static", StaticFiles(directory=STATIC), name="console-static"),
]
