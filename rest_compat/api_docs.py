"""`/tasker/api-docs.json` (the generated OpenAPI document) and `/tasker/api-docs` (Swagger UI).

Swagger UI's files come from the `swagger-ui-bundle-v2` package, which the app serves under
`/tasker/static/swagger-ui`, so the page works with no internet access.
"""

import json
from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from rest_compat.openapi import build_document
from rest_compat.operations import Operation, services_of

DOCUMENT_PATH = "/tasker/api-docs.json"
SWAGGER_ASSETS = "/tasker/static/swagger-ui"

SWAGGER_PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Tasker REST API</title>
<link rel="stylesheet" href="{SWAGGER_ASSETS}/swagger-ui.css">
<link rel="icon" type="image/png" href="{SWAGGER_ASSETS}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{SWAGGER_ASSETS}/swagger-ui-bundle.js"></script>
<script src="{SWAGGER_ASSETS}/swagger-ui-standalone-preset.js"></script>
<script>
  window.ui = SwaggerUIBundle({{
    url: "{DOCUMENT_PATH}",
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout",
    validatorUrl: null,
    deepLinking: true
  }});
</script>
</body>
</html>
"""


def docs_routes(operations: Sequence[Operation]) -> list[BaseRoute]:
    """The two documentation routes for this operation table (public operations included)."""
    # Built once per configuration: is authentication on, and which permissions are waived.
    rendered: dict[tuple[bool, frozenset[str]], bytes] = {}

    async def openapi_document(request: Request) -> Response:
        gate = services_of(request).auth
        key = (gate.enabled, gate.waived)
        if key not in rendered:
            document = build_document(operations, auth_required=key[0], waived=key[1])
            rendered[key] = json.dumps(document).encode()
        return Response(rendered[key], media_type="application/json")

    async def swagger_ui(request: Request) -> Response:
        return HTMLResponse(SWAGGER_PAGE)

    return [
        Route(DOCUMENT_PATH, openapi_document, methods=["GET"]),
        Route("/tasker/api-docs", swagger_ui, methods=["GET"]),
    ]
