"""Flow-control types: declared limits (on handlers and step templates) and their current use."""

import strawberry

from server.domain.flow import ConcurrencySpec, LimitUsage, RateLimitSpec


@strawberry.type(name="ConcurrencyLimit", description="At most `limit` running per key.")
class ConcurrencyLimitType:
    key: str | None = strawberry.field(
        description="A context path or a constant; null: one group for all."
    )
    limit: int = strawberry.field(description="Slots per key.")
    strategy: str | None = strawberry.field(
        description="Handler limits: queue, cancel_in_progress or cancel_newest."
    )

    @classmethod
    def of(cls, spec: ConcurrencySpec | None, *, handler: bool) -> "ConcurrencyLimitType | None":
        if spec is None:
            return None
        return cls(key=spec.key, limit=spec.limit, strategy=spec.strategy if handler else None)


@strawberry.type(name="RateLimit", description="At most `limit` starts per key in any window.")
class RateLimitType:
    key: str | None = strawberry.field(description="A context path or a constant.")
    limit: int = strawberry.field(description="Starts per window per key.")
    period: str = strawberry.field(description="The window as declared, e.g. 1m.")
    period_seconds: float = strawberry.field(description="The window in seconds.")

    @classmethod
    def of(cls, spec: RateLimitSpec | None) -> "RateLimitType | None":
        if spec is None:
            return None
        return cls(
            key=spec.key, limit=spec.limit, period=spec.period_text, period_seconds=spec.period
        )


@strawberry.type(name="LimitUsage", description="The current use of one key of one limit.")
class LimitUsageType:
    kind: str = strawberry.field(
        description="task (a handler's concurrency), step (a step's concurrency) or rate."
    )
    namespace: str = strawberry.field(description="The handler's namespace.")
    handler: str = strawberry.field(description="The handler's name.")
    step: str | None = strawberry.field(description="The step template (step and rate limits).")
    key: str = strawberry.field(description="The key's value ('' when no key is in use yet).")
    limit: int = strawberry.field(description="Slots, or starts per window.")
    in_use: int = strawberry.field(description="Slots held, or starts in the current window.")
    waiting: int = strawberry.field(description="Steps waiting for a slot.")
    holders: list[str] = strawberry.field(description="Ids of the tasks or steps holding slots.")
    period_seconds: float | None = strawberry.field(description="A rate limit's window.")

    @classmethod
    def from_view(cls, u: LimitUsage) -> "LimitUsageType":
        return cls(
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
