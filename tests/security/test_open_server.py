"""With no key configured the server is open (and the CLI keeps it on loopback)."""

import os
from collections.abc import AsyncIterator

import httpx
import pytest

from server.app import create_app
from server.container import Services


@pytest.fixture
async def open_client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """The default server: no key configured, so open."""
    transport = httpx.ASGITransport(app=create_app(services=services))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def test_with_no_key_the_server_is_open_and_ignores_tokens(open_client: httpx.AsyncClient):
    assert (await open_client.get("/tasker/tasks")).status_code == 200
    garbage = {"Authorization": "Bearer garbage"}
    assert (await open_client.get("/tasker/tasks", headers=garbage)).status_code == 200
    assert os.environ.get("TASKER_JWT_SECRET") is None


def test_an_open_server_refuses_a_public_address():
    from click.testing import CliRunner

    from server.cli import main

    result = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 1
    assert "refusing to listen on 0.0.0.0 with authentication off" in result.output
