"""A map step's items: progress counts and one page of the items, in input order."""

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from graphql_schema.types.enums import StepStatus
from server.domain.views import ItemPage, ItemView


@strawberry.type(name="StepItem", description="One item of a map step.")
class StepItemType:
    index: int = strawberry.field(description="Position in the mapped list.")
    status: StepStatus = strawberry.field(description="Current state.")
    attempts: int = strawberry.field(description="Attempts started so far.")
    item: JSON | None = strawberry.field(description="The item the handler got as step.item.")
    results: JSON | None = strawberry.field(description="What the handler returned for it.")
    last_error: str | None = strawberry.field(description="Message of the last failure.")
    error_class: str | None = strawberry.field(description="Class or code of the last failure.")
    next_attempt_at: datetime | None = strawberry.field(description="When a retry is due.")
    started_at: datetime | None = strawberry.field(description="Start of the last attempt.")
    completed_at: datetime | None = strawberry.field(description="When it finished.")

    @classmethod
    def from_view(cls, view: ItemView) -> "StepItemType":
        return cls(
            index=view.index,
            status=view.status,
            attempts=view.attempts,
            item=view.item,
            results=view.results,
            last_error=view.last_error,
            error_class=view.error_class,
            next_attempt_at=view.next_attempt_at,
            started_at=view.started_at,
            completed_at=view.completed_at,
        )


@strawberry.type(
    name="StepItems", description="A map step's item progress and a page of its items."
)
class StepItemsType:
    total: int = strawberry.field(description="Items in the mapped list.")
    complete: int = strawberry.field(description="Items complete.")
    error: int = strawberry.field(description="Items failed (backing off or for good).")
    in_progress: int = strawberry.field(description="Items running now.")
    nodes: list[StepItemType] = strawberry.field(description="This page, in input order.")
    next_after: int | None = strawberry.field(
        description="Pass as `after` for the next page; null on the last one."
    )

    @classmethod
    def from_page(cls, page: ItemPage) -> "StepItemsType":
        counts = page.counts
        return cls(
            total=counts.total,
            complete=counts.complete,
            error=counts.error,
            in_progress=counts.in_progress,
            nodes=[StepItemType.from_view(i) for i in page.items],
            next_after=page.next_after,
        )
