from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import cached_property, partial
from typing import TypeVar
from uuid import UUID

from strawberry.dataloader import DataLoader

from server.container import Services
from server.domain.views import ItemCounts, StepView, TaskDependencies, TaskView, TransitionView
from server.services import map_progress, queries

K = TypeVar("K")
V = TypeVar("V")


def _keyed(read: Callable[[Sequence[K]], Awaitable[Mapping[K, V]]], missing: V) -> DataLoader[K, V]:
    """A loader over a batch read that answers by key; a key it does not answer gets
    `missing`."""

    async def load(keys: Sequence[K]) -> list[V]:
        found = await read(keys)
        return [found.get(k, missing) for k in keys]

    return DataLoader(load)


class Loaders:
    """Per-operation batch readers: one query batch per relation, whatever the page size.

    Each is made when an operation first uses it: most documents use one or two of them.
    A list read for a missing key is an empty tuple, never a list callers could share."""

    def __init__(self, services: Services) -> None:
        self.services = services

    @cached_property
    def task(self) -> DataLoader[UUID, TaskView | None]:
        return _keyed(queries.tasks_by_ids, None)

    @cached_property
    def steps(self) -> DataLoader[UUID, Sequence[StepView]]:
        return _keyed(queries.steps_by_task, ())

    @cached_property
    def steps_alone(self) -> DataLoader[UUID, Sequence[StepView]]:
        """The same steps without their parents and children: one query less, for the many
        documents that ask for neither (see `graphql_schema.selections`)."""
        return _keyed(partial(queries.steps_by_task, with_edges=False), ())

    @cached_property
    def steps_bare(self) -> DataLoader[UUID, Sequence[StepView]]:
        """The steps without their edges, `inputs` and `results` (None): for the documents
        that show none of them, such as a page of tasks with their steps' states."""
        return _keyed(partial(queries.steps_by_task, with_edges=False, with_payloads=False), ())

    def steps_for(
        self, with_edges: bool, with_payloads: bool = True
    ) -> DataLoader[UUID, Sequence[StepView]]:
        """The steps loader for a selection that does or does not ask for the step edges,
        and for the steps' `inputs` or `results`."""
        if with_edges:
            return self.steps
        return self.steps_alone if with_payloads else self.steps_bare

    @cached_property
    def task_transitions(self) -> DataLoader[UUID, Sequence[TransitionView]]:
        return _keyed(queries.transitions_by_task, ())

    @cached_property
    def step_transitions(self) -> DataLoader[int, Sequence[TransitionView]]:
        return _keyed(lambda ids: self.services.steps.transitions(list(ids)), ())

    @cached_property
    def dependencies(self) -> DataLoader[UUID, TaskDependencies | None]:
        async def dependencies(ids: Sequence[UUID]) -> list[TaskDependencies | None]:
            # One liveness reading for the whole batch (a page of tasks with their steps'
            # reasons), over the tasks and steps the other loaders hold or read.
            views = await self.task.load_many(ids)
            step_lists = await self.steps.load_many(ids)
            found = [(v, s) for v, s in zip(views, step_lists, strict=True) if v is not None]
            analysed = iter(await self.services.tasks.dependencies_of(found))
            return [None if view is None else next(analysed) for view in views]

        return DataLoader(dependencies)

    @cached_property
    def item_counts(self) -> DataLoader[int, ItemCounts | None]:
        """Map steps' item progress: one grouped query for every step of the operation."""
        return _keyed(map_progress.item_counts, None)
