"""Reads of map steps' items: progress counts per step and one page of a step's items.

Counts come from the items table grouped by status (its (step_id, status, ...) index), only for
the steps asked about; a step with no items (not a map step, or not started) has none.
"""

from collections.abc import Sequence
from uuid import UUID

from tortoise.functions import Count

from server.db.models import StepItem
from server.domain.errors import ValidationFailed
from server.domain.states import StepState
from server.domain.views import ItemCounts, ItemPage, ItemView
from server.services.steps import StepService

MAX_ITEMS_PAGE = 1000


async def item_counts(step_ids: Sequence[int]) -> dict[int, ItemCounts]:
    """Item progress of each of these steps that has items."""
    if not step_ids:
        return {}
    rows = await (
        StepItem.filter(step_id__in=list(step_ids))
        .annotate(n=Count("id"))
        .group_by("step_id", "status")
        .values_list("step_id", "status", "n")
    )
    by_step: dict[int, dict[str, int]] = {}
    for step_id, status, n in rows:
        by_step.setdefault(int(step_id), {})[str(status)] = int(n)
    return {step_id: counts_of(statuses) for step_id, statuses in by_step.items()}


def counts_of(statuses: dict[str, int]) -> ItemCounts:
    """`ItemCounts` from item counts by status."""
    return ItemCounts(
        total=sum(statuses.values()),
        complete=statuses.get(StepState.COMPLETE.value, 0),
        error=statuses.get(StepState.ERROR.value, 0),
        in_progress=statuses.get(StepState.IN_PROGRESS.value, 0),
    )


async def list_items(
    steps: StepService, task_id: UUID | str, step: str | int, *, after: int = -1, first: int = 100
) -> ItemPage:
    """The step's items after index `after`, in input order, at most `first` of them
    (TaskNotFound / StepNotFound / ValidationFailed for a bad page size)."""
    check_page_size(first)
    view = await steps.get_step(task_id, step)
    counts = (await item_counts([view.id])).get(view.id, ItemCounts(0, 0, 0, 0))
    return await item_page(view.id, counts, after=after, first=first)


def check_page_size(first: int) -> None:
    """ValidationFailed unless 1 <= first <= MAX_ITEMS_PAGE."""
    if not 1 <= first <= MAX_ITEMS_PAGE:
        raise ValidationFailed(
            "Invalid page", {"first": [f"must be between 1 and {MAX_ITEMS_PAGE}"]}
        )


async def item_page(step_id: int, counts: ItemCounts, *, after: int, first: int) -> ItemPage:
    """A page of a step whose counts were read already (for many steps at once: GraphQL's
    `Step.items` on a page of steps reads the counts of all in one query)."""
    rows = await StepItem.filter(step_id=step_id, idx__gt=after).order_by("idx").limit(first + 1)
    page = [
        ItemView(
            index=r.idx,
            status=StepState(r.status),
            attempts=r.attempts,
            item=r.item,
            results=r.results,
            last_error=r.last_error,
            error_class=r.error_class,
            next_attempt_at=r.next_attempt_at,
            started_at=r.started_at,
            completed_at=r.completed_at,
        )
        for r in rows[:first]
    ]
    more = len(rows) > first
    return ItemPage(
        step_id=step_id,
        counts=counts,
        items=tuple(page),
        next_after=page[-1].index if more and page else None,
    )
