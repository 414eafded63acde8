from collections.abc import Sequence
from functools import cached_property
from uuid import UUID

from strawberry.dataloader import DataLoader

from server.container import Services
from server.domain.views import ItemCounts, StepView, TaskDependencies, TaskView, TransitionView
from server.services import map_progress, queries


class Loaders:
    """Per-operation batch readers: one query batch per relation, whatever the page size.

    Each is made when an operation first uses it: most documents use one or two of them."""

    def __init__(self, services: Services) -> None:
        self.services = services

    @cached_property
    def task(self) -> DataLoader[UUID, TaskView | None]:
        async def tasks(ids: Sequence[UUID]) -> list[TaskView | None]:
            found = await queries.tasks_by_ids(ids)
            return [found.get(i) for i in ids]

        return DataLoader(tasks)

    @cached_property
    def steps(self) -> DataLoader[UUID, list[StepView]]:
        async def steps(ids: Sequence[UUID]) -> list[list[StepView]]:
            found = await queries.steps_by_task(ids)
            return [found.get(i, []) for i in ids]

        return DataLoader(steps)

    @cached_property
    def steps_alone(self) -> DataLoader[UUID, list[StepView]]:
        """The same steps without their parents and children: one query less, for the many
        documents that ask for neither (see `graphql_schema.selections`)."""

        async def steps_alone(ids: Sequence[UUID]) -> list[list[StepView]]:
            found = await queries.steps_by_task(ids, with_edges=False)
            return [found.get(i, []) for i in ids]

        return DataLoader(steps_alone)

    @cached_property
    def task_transitions(self) -> DataLoader[UUID, list[TransitionView]]:
        async def task_transitions(ids: Sequence[UUID]) -> list[list[TransitionView]]:
            found = await queries.transitions_by_task(ids)
            return [found.get(i, []) for i in ids]

        return DataLoader(task_transitions)

    @cached_property
    def step_transitions(self) -> DataLoader[int, list[TransitionView]]:
        async def step_transitions(ids: Sequence[int]) -> list[list[TransitionView]]:
            found = await self.services.steps.transitions(list(ids))
            return [found.get(i, []) for i in ids]

        return DataLoader(step_transitions)

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

        async def counts(ids: Sequence[int]) -> list[ItemCounts | None]:
            found = await map_progress.item_counts(ids)
            return [found.get(i) for i in ids]

        return DataLoader(counts)
