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
    """The two documentation routes for this operation table."""
    rendered: dict[bool, bytes] = {}  # by "is authentication on": the document is built once

    async def openapi_document(request: Request) -> Response:
        settings = services_of(request).settings
        auth = bool(settings.jwt_secret or settings.jwt_public_key)
        if auth not in rendered:
            rendered[auth] = json.dumps(build_document(operations, auth_required=auth)).encode()
        return Response(rendered[auth], media_type="application/json")

    async def swagger_ui(request: Request) -> Response:
        return HTMLResponse(SWAGGER_PAGE)

    return [
        Route(DOCUMENT_PATH, openapi_document, methods=["GET"]),
        Route("/tasker/api-docs", swagger_ui, methods=["GET"]),
    ]
