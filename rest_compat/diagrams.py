"""`GET /tasks/{task_id}/task_diagrams`: the task's graph as JSON, or a page drawing it.

The shaping lives in the core (`server.services.diagrams`); this module only picks the format.
The HTML page is standalone and loads Mermaid from this server's vendored copy.
"""

import html

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from rest_compat import serializers
from rest_compat.operations import render, services_of
from rest_compat.params import DiagramQuery
from server.assets import asset_url
from server.services.children import children_of
from server.services.diagrams import TaskDiagram, task_diagram, to_mermaid

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
  body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
  h1 {{ font-size: 1.3rem; margin-bottom: .2rem; }}
  .meta {{ color: #666; margin-bottom: 1.5rem; }}
  .meta a {{ color: inherit; }}
</style>
</head>
<body>
<h1>{title}</h1>
<div class="meta">Task {task_id} &middot; <b>{status}</b> &middot;
  <a href="?format=json">JSON</a></div>
<pre class="mermaid">
{source}</pre>
<script src="{mermaid}"></script>
<script>mermaid.initialize({{ startOnLoad: true, securityLevel: "strict" }});</script>
</body>
</html>
"""


def diagram_page(diagram: TaskDiagram) -> str:
    """A standalone HTML page rendering the diagram with Mermaid."""
    return PAGE.format(
        title=html.escape(diagram.title),
        task_id=html.escape(str(diagram.task_id)),
        status=html.escape(diagram.status.value),
        source=html.escape(to_mermaid(diagram)),
        mermaid=html.escape(asset_url("mermaid.min.js")),
    )


async def show_diagram(request: Request, query: DiagramQuery) -> Response:
    services = services_of(request)
    task = await services.tasks.get_task(request.path_params["task_id"])
    started = {str(c.parent_step): c.id for c in await children_of(task.id)}
    diagram = task_diagram(task, await services.steps.list_steps(task.id), children=started)
    if query.format == "html":
        return HTMLResponse(diagram_page(diagram))
    return render(serializers.diagram_out(diagram))
