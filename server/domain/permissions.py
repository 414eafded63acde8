"""What each use case needs: the ONE permission table REST, GraphQL and the event streams read.

Every surface asks for the permission of the use case it serves, by these names, so a task's
steps need the same grant through `GET /tasks/{id}?include_dependencies=true`,
`/workflow_steps` and GraphQL's `Task.steps`, and cancelling needs the same grant through
REST's DELETE and GraphQL's `cancelTask`. The grammar of grants and the known resources and
actions are in `server.domain.principal`.
"""

from collections.abc import Mapping
from typing import Final

# Tasks
LIST_TASKS: Final = "tasker.task:index"
SHOW_TASK: Final = "tasker.task:show"
"""A task's own record, its task-level transitions and its event stream."""
CREATE_TASK: Final = "tasker.task:create"
UPDATE_TASK: Final = "tasker.task:update"
RETRY_TASK: Final = "tasker.task:retry"
CANCEL_TASK: Final = "tasker.task:cancel"
PAUSE_TASK: Final = "tasker.task:pause"
"""Pause and resume a task."""
SIGNAL_TASK: Final = "tasker.task:signal"
"""Deliver a signal to a task's `wait_for` step (an approval, an external event)."""
BULK_TASKS: Final = "tasker.task:bulk"
"""Bulk cancel/retry/rerun, needed besides the single action's own permission."""

# Steps
READ_STEPS: Final = "tasker.workflow_step:index"
"""A task's steps (status, results, attempts, blocked reasons) and its dependency analysis,
whichever surface lists them."""
SHOW_STEP: Final = "tasker.workflow_step:show"
UPDATE_STEP: Final = "tasker.workflow_step:update"
RETRY_STEP: Final = "tasker.workflow_step:retry"
CANCEL_STEP: Final = "tasker.workflow_step:cancel"

# Handlers
LIST_HANDLERS: Final = "tasker.handler:index"
"""Namespaces and the names, versions and descriptions of their handlers."""
SHOW_HANDLER: Final = "tasker.handler:show"
"""A handler's detail: context schema, step templates, dependency graph, every version."""
PAUSE_HANDLER: Final = "tasker.handler:pause"
"""Pause and resume a handler (all its tasks, present and future)."""

# Schedules
LIST_SCHEDULES: Final = "tasker.schedule:index"
SHOW_SCHEDULE: Final = "tasker.schedule:show"
CREATE_SCHEDULE: Final = "tasker.schedule:create"
UPDATE_SCHEDULE: Final = "tasker.schedule:update"
"""Change a schedule, pause or resume it."""
DELETE_SCHEDULE: Final = "tasker.schedule:destroy"

# Diagrams and observability
SHOW_DIAGRAM: Final = "tasker.task_diagram:show"
ANALYTICS: Final = "tasker.analytics:index"
METRICS: Final = "tasker.metrics:index"
HEALTH_STATUS: Final = "tasker.health_status:index"

IMPLIED_ACTIONS: Final[Mapping[str, str]] = {"destroy": "cancel"}
"""A grant of the first action also grants the second, on the same resource. REST's DELETE
once needed `:destroy` to cancel; tokens minted for it keep cancelling on every surface."""
