"""Flow control: `GET /tasker/limits`, the current use of every declared limit per key."""

from starlette.requests import Request

from rest_compat.operations import services_of
from rest_compat.params import LimitsQuery
from rest_compat.shapes import LimitList, LimitUsageOut
from server.services.flow_status import handlers_named, limit_usage


async def list_limits(request: Request, query: LimitsQuery) -> LimitList:
    services = services_of(request)
    templates = handlers_named(services.registry, query.handler)
    usage = await limit_usage(templates, now=services.changes.clock.now())
    return LimitList(
        limits=[
            LimitUsageOut(
                kind=u.kind,
                namespace=u.namespace,
                handler=u.handler,
                step=u.step,
                key=u.key,
                limit=u.limit,
                in_use=u.in_use,
                waiting=u.waiting,
                holders=list(u.holders),
                period_seconds=u.period_seconds,
            )
            for u in usage
        ]
    )
