"""Map steps driven without workers: a test runs the map step, then its items, one at a time."""

from server.container import Services
from server.db.models import StepItem, WorkflowStep
from server.domain.views import CreateTask


async def started_map(services: Services, count: int) -> tuple[WorkflowStep, list[int]]:
    """A map_numbers task whose map step was claimed and handed over to its items."""
    view, _ = await services.tasks.create_task(
        CreateTask(namespace="dynamic", name="map_numbers", context={"numbers": [1] * count})
    )
    step = await WorkflowStep.get(task_id=view.id, name="double")
    assert await services.runner.run_step(step.id) == "awaiting"
    ids = await StepItem.filter(step_id=step.id).order_by("idx").values_list("id", flat=True)
    return step, list(ids)  # type: ignore[arg-type]
