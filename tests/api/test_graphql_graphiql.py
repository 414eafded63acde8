"""GET /tasker/graphql serves GraphiQL wired to the vendored files (works with no internet)."""

import base64
import hashlib
import re

import pytest

from server.assets import missing

pytestmark = pytest.mark.skipif(
    bool(missing()),
    reason=f"vendored browser assets not fetched (python -m server.assets): {missing()}",
)


async def test_graphiql_page_loads_only_local_assets(client):
    response = await client.get("/tasker/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "unpkg.com" not in html and "https://" not in html.split("<body>")[0]
    assets = re.findall(r'(?:src|href)="(/tasker/static/vendor/[^"]+)"\s+integrity="([^"]+)"', html)
    assert len(assets) == 7
    for url, integrity in assets:
        served = await client.get(url)
        assert served.status_code == 200, url
        algorithm, expected = integrity.split("-", 1)
        digest = base64.b64encode(hashlib.new(algorithm, served.content).digest()).decode()
        assert digest == expected, f"{url} does not match its SRI hash"


async def test_a_query_in_the_url_is_executed_not_shown(client):
    response = await client.get(
        "/tasker/graphql", params={"query": "{ __typename }"}, headers={"Accept": "text/html"}
    )
    assert response.json() == {"data": {"__typename": "Query"}}
