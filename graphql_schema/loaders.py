from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from strawberry.dataloader import DataLoader

from server.container import Services
from server.domain.views import ItemCounts, StepView, TaskDependencies, TaskView, TransitionView
from server.services import map_progress, queries


@dataclass(frozen=True, slots=True)
class Loaders:
    """Per-operation batch readers: one query batch per relation, whatever the page size."""

    task: DataLoader[UUID, TaskView | None]
    steps: DataLoader[UUID, list[StepView]]
    steps_alone: DataLoader[UUID, list[StepView]]
    """The same steps without their parents and children: one query less, for the many
    documents that ask for neither (see `graphql_schema.selections`)."""
    task_transitions: DataLoader[UUID, list[TransitionView]]
    step_transitions: DataLoader[int, list[TransitionView]]
    dependencies: DataLoader[UUID, TaskDependencies | None]
    item_counts: DataLoader[int, ItemCounts | None]
    """Map steps' item progress: one grouped query for every step of the operation."""


def build_loaders(services: Services) -> Loaders:
    async def tasks(ids: Sequence[UUID]) -> list[TaskView | None]:
        found = await queries.tasks_by_ids(ids)
        return [found.get(i) for i in ids]

    async def steps(ids: Sequence[UUID]) -> list[list[StepView]]:
        found = await queries.steps_by_task(ids)
        return [found.get(i, []) for i in ids]

    async def steps_alone(ids: Sequence[UUID]) -> list[list[StepView]]:
        found = await queries.steps_by_task(ids, with_edges=False)
        return [found.get(i, []) for i in ids]

    async def task_transitions(ids: Sequence[UUID]) -> list[list[TransitionView]]:
        found = await queries.transitions_by_task(ids)
        return [found.get(i, []) for i in ids]

    async def step_transitions(ids: Sequence[int]) -> list[list[TransitionView]]:
        found = await services.steps.transitions(list(ids))
        return [found.get(i, []) for i in ids]

    async def counts(ids: Sequence[int]) -> list[ItemCounts | None]:
        found = await map_progress.item_counts(ids)
        return [found.get(i) for i in ids]

    task_loader = DataLoader(tasks)
    step_loader = DataLoader(steps)

    async def dependencies(ids: Sequence[UUID]) -> list[TaskDependencies | None]:
        # One liveness reading for the whole batch (a page of tasks with their steps' reasons).
        views = await task_loader.load_many(ids)
        step_lists = await step_loader.load_many(ids)
        found = [(v, s) for v, s in zip(views, step_lists, strict=True) if v is not None]
        analysed = iter(await services.tasks.dependencies_of(found))
        return [None if view is None else next(analysed) for view in views]

    return Loaders(
        task=task_loader,
        steps=step_loader,
        steps_alone=DataLoader(steps_alone),
        task_transitions=DataLoader(task_transitions),
        step_transitions=DataLoader(step_transitions),
        dependencies=DataLoader(dependencies),
        item_counts=DataLoader(counts),
    )
