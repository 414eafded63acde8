"""Handler discovery: `/handlers`, `/handlers/{namespace}`, `/handlers/{namespace}/{name}`."""

from starlette.requests import Request

from rest_compat import serializers
from rest_compat.operations import services_of
from rest_compat.params import HandlerQuery
from rest_compat.shapes import HandlerDetail, NamespaceHandlers, NamespaceList
from server.services.pausing import is_paused


async def list_namespaces(request: Request) -> NamespaceList:
    infos = services_of(request).registry.namespaces()
    return NamespaceList(namespaces=[serializers.namespace_out(info) for info in infos])


async def list_handlers(request: Request) -> NamespaceHandlers:
    namespace = request.path_params["namespace"]
    services = services_of(request)
    templates = services.registry.handlers(namespace)
    paused = await services.pausing.paused_handlers()
    return NamespaceHandlers(
        namespace=namespace,
        handlers=[
            serializers.handler_summary(t).model_copy(
                update={"paused": is_paused(paused, t.namespace, t.name, t.version)}
            )
            for t in templates
        ],
    )


async def show_handler(request: Request, query: HandlerQuery) -> HandlerDetail:
    services = services_of(request)
    template = services.registry.get(
        request.path_params["namespace"], request.path_params["name"], query.version
    )
    pause = await services.pausing.handler_pause(
        template.namespace, template.name, template.version
    )
    return serializers.handler_detail(template).model_copy(update={"paused": pause.paused})
