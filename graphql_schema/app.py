"""The GraphQL endpoint at /tasker/graphql (filled in by the GraphQL work)."""

from starlette.routing import BaseRoute

from server.container import Services


def routes(services: Services) -> list[BaseRoute]:
    """Routes serving GraphQL over HTTP and websockets."""
    return []
