"""Handler discovery: `/handlers`, `/handlers/{namespace}`, `/handlers/{namespace}/{name}`."""

from starlette.requests import Request

from rest_compat import serializers
from rest_compat.operations import services_of
from rest_compat.params import HandlerQuery
from rest_compat.shapes import HandlerDetail, NamespaceHandlers, NamespaceList


async def list_namespaces(request: Request) -> NamespaceList:
    infos = services_of(request).registry.namespaces()
    return NamespaceList(namespaces=[serializers.namespace_out(info) for info in infos])


async def list_handlers(request: Request) -> NamespaceHandlers:
    namespace = request.path_params["namespace"]
    templates = services_of(request).registry.handlers(namespace)
    return NamespaceHandlers(
        namespace=namespace, handlers=[serializers.handler_summary(t) for t in templates]
    )


async def show_handler(request: Request, query: HandlerQuery) -> HandlerDetail:
    template = services_of(request).registry.get(
        request.path_params["namespace"], request.path_params["name"], query.version
    )
    return serializers.handler_detail(template)
