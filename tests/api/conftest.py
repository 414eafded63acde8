"""API fixtures: an ASGI client over the same services (and loop) as the test."""

from collections.abc import AsyncIterator

import httpx
import pytest

from server.app import create_app
from server.container import Services


@pytest.fixture
async def app(engine: Services):  # type: ignore[no-untyped-def]
    """The full app over the running embedded engine (workers, sweeper, examples loaded)."""
    return create_app(services=engine)


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    """An httpx client talking to the app in-process."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
