"""The REST surface under /tasker on one screen: path, method, permission, handler, replies.

The seed's endpoints (seed/REST_API.md) come first, then the additive ones (DESIGN.md §5.5).
This table is the single source for routing, for the permission each call needs
(`PERMISSIONS`, named from the core's table `server.domain.permissions`, which GraphQL reads
too; `rest_compat.operations.authorize` receives it on every request) and for the OpenAPI
document. Cancelling (DELETE) needs `:cancel`, as in GraphQL; a `:destroy` grant implies it.
"""

from starlette.routing import BaseRoute

from rest_compat import (
    batch,
    diagrams,
    discovery,
    events,
    limits,
    observability,
    pausing,
    schedules,
    signals,
    steps,
    tasks,
)
from rest_compat.api_docs import docs_routes
from rest_compat.operations import Link, Operation, Reply, routes_for
from rest_compat.shapes import (
    BulkOut,
    DiagramOut,
    EventOut,
    HandlerDetail,
    HandlerPauseOut,
    ItemPageOut,
    LimitList,
    NamespaceHandlers,
    NamespaceList,
    SignalOut,
    StepList,
    StepOut,
    StreamEndOut,
    TaskList,
    TaskOut,
    TaskRecordOut,
    TaskWithDependencies,
)
from server.domain import permissions as need
from server.domain.errors import InvalidTaskConfig

T = "/tasker/tasks"
STEP = f"{T}/{{task_id}}/workflow_steps/{{step_id}}"
HTML = {"type": "string", "description": "A standalone HTML page"}
EVENTS = (
    "Replays history after Last-Event-ID (or ?after=), then follows live; each event's id is "
    "its cursor. Ends with an `end` event once the task is complete, error, cancelled or "
    "resolved."
)

# Where a created task and a listed step lead (OpenAPI links; schemathesis follows them).
TASK_LINKS = tuple(
    Link(name, {"id": "$response.body#/id"})
    for name in ("show_task", "update_task", "cancel_task", "retry_task", "task_events")
) + tuple(Link(name, {"task_id": "$response.body#/id"}) for name in ("list_steps", "show_diagram"))
STEP_LINKS = tuple(
    Link(name, {"task_id": "$response.body#/workflow_steps/0/task_id",
                "step_id": "$response.body#/workflow_steps/0/name"})
    for name in ("show_step", "update_step", "cancel_step", "retry_step", "resolve_step")
)  # fmt: skip

S = "/tasker/schedules"
ONE_SCHEDULE = f"{S}/{{id}}"
# fmt: off
schedules_ops: list[Operation] = [
    Operation("GET", S, schedules.list_schedules,
              need.LIST_SCHEDULES, "List cron schedules with their next fire times",
              (Reply(200, "Every schedule", schedules.ScheduleList),), tag="schedules"),
    Operation("POST", S, schedules.create_schedule,
              need.CREATE_SCHEDULE, "Create a cron schedule",
              (Reply(201, "Created", schedules.ScheduleOut),), errors=(404, 409),
              tag="schedules"),
    Operation("GET", ONE_SCHEDULE, schedules.show_schedule,
              need.SHOW_SCHEDULE, "A schedule",
              (Reply(200, "The schedule", schedules.ScheduleOut),), tag="schedules"),
    Operation("PATCH", ONE_SCHEDULE, schedules.update_schedule,
              need.UPDATE_SCHEDULE,
              "Change a schedule (a new cron or time zone moves its next tick)",
              (Reply(200, "The updated schedule", schedules.ScheduleOut),), errors=(409,),
              tag="schedules"),
    Operation("DELETE", ONE_SCHEDULE, schedules.delete_schedule,
              need.DELETE_SCHEDULE, "Delete a schedule (the tasks it fired stay)",
              (Reply(200, "The deleted schedule", schedules.ScheduleOut),), tag="schedules"),
    Operation("POST", f"{ONE_SCHEDULE}/pause", schedules.pause_schedule,
              need.UPDATE_SCHEDULE, "Pause a schedule (idempotent)",
              (Reply(200, "The paused schedule", schedules.ScheduleOut),), tag="schedules"),
    Operation("POST", f"{ONE_SCHEDULE}/resume", schedules.resume_schedule,
              need.UPDATE_SCHEDULE,
              "Resume a schedule (idempotent); ticks that passed while paused are skipped",
              (Reply(200, "The resumed schedule", schedules.ScheduleOut),), tag="schedules"),
]
# fmt: on

# One operation per entry, aligned as a table; the formatter would spread each over 8 lines.
# fmt: off
OPERATIONS: list[Operation] = [
    # --- handler discovery (seed) ---
    Operation("GET", "/tasker/handlers", discovery.list_namespaces,
              need.LIST_HANDLERS, "List namespaces with their handlers",
              (Reply(200, "Every namespace", NamespaceList),), tag="handlers"),
    Operation("GET", "/tasker/handlers/{namespace}", discovery.list_handlers,
              need.LIST_HANDLERS, "List the handlers of a namespace",
              (Reply(200, "The latest version of each handler", NamespaceHandlers),),
              tag="handlers"),
    Operation("GET", "/tasker/handlers/{namespace}/{name}", discovery.show_handler,
              need.SHOW_HANDLER, "A handler's step templates and dependency graph",
              (Reply(200, "The handler (the latest version unless asked)", HandlerDetail),),
              tag="handlers"),
    Operation("GET", "/tasker/limits", limits.list_limits,
              need.LIST_HANDLERS, "Current use of every declared limit, per key",
              (Reply(200, "Slots held and waited for, and rate-window starts", LimitList),),
              errors=(404,), tag="handlers"),
    # --- tasks (seed) ---
    Operation("POST", T, tasks.create_task,
              need.CREATE_TASK, "Create a task",
              (Reply(201, "Created", TaskOut, links=TASK_LINKS),
               Reply(200, "The task an earlier request with this Idempotency-Key created, "
                     "or the debounced task this creation joined", TaskOut, links=TASK_LINKS)),
              errors=(404, 409), invalid=(InvalidTaskConfig, InvalidTaskConfig.default_message)),
    Operation("POST", f"{T}/batch", batch.create_tasks,
              need.CREATE_TASK, f"Create up to {batch.MAX_BATCH} tasks, one result each",
              (Reply(200, "One result per entry, in input order: the task or its error",
                     batch.BatchOut),),
              description=batch.__doc__ or ""),
    Operation("GET", T, tasks.list_tasks,
              need.LIST_TASKS, "List tasks, newest first",
              (Reply(200, "One page of tasks", TaskList),)),
    # The larger shape first: generated clients try a union's members in order, and a body
    # with dependencies would also read as a plain TaskOut (extra keys are allowed).
    Operation("GET", f"{T}/{{id}}", tasks.show_task,
              need.SHOW_TASK, "A task",
              (Reply(200, "The task; with include_dependencies=true also its steps and "
                     "dependency analysis, which need tasker.workflow_step:index too",
                     TaskWithDependencies | TaskOut),)),
    Operation("GET", f"{T}/{{task_id}}/task_diagrams", diagrams.show_diagram,
              need.SHOW_DIAGRAM, "A task's dependency diagram",
              (Reply(200, "The diagram, or with format=html a page drawing it", DiagramOut,
                     alternatives=(("text/html", HTML),)),),
              tag="diagrams"),
    # --- workflow steps (seed); {step_id} is a step name or id ---
    Operation("GET", f"{T}/{{task_id}}/workflow_steps", steps.list_steps,
              need.READ_STEPS, "List a task's steps",
              (Reply(200, "Every step, in template order", StepList, links=STEP_LINKS),),
              tag="workflow_steps"),
    Operation("GET", STEP, steps.show_step,
              need.SHOW_STEP, "A step",
              (Reply(200, "The step", StepOut),), tag="workflow_steps"),
    Operation("PATCH", STEP, steps.update_step,
              need.UPDATE_STEP, "Change a step's retry limit and/or inputs",
              (Reply(200, "The updated step", StepOut),), tag="workflow_steps"),
    Operation("DELETE", STEP, steps.cancel_step,
              need.CANCEL_STEP, "Cancel a step",
              (Reply(200, "The cancelled step", StepOut),), errors=(409,),
              tag="workflow_steps"),
    # --- additive (DESIGN.md 5.5) ---
    Operation("PATCH", f"{T}/{{id}}", tasks.update_task,
              need.UPDATE_TASK, "Change a task's reason and/or tags",
              (Reply(200, "The updated task", TaskRecordOut),)),
    Operation("DELETE", f"{T}/{{id}}", tasks.cancel_task,
              need.CANCEL_TASK, "Cancel a task and its unfinished steps",
              (Reply(200, "The cancelled task", TaskRecordOut),), errors=(409,)),
    # Before {id}/retry: POST /tasks/bulk/retry must not read 'bulk' as a task id.
    Operation("POST", f"{T}/bulk/cancel", tasks.bulk_cancel,
              need.BULK_TASKS, "Cancel every task a filter matches (needs :cancel too)",
              (Reply(200, "The cancelled tasks", BulkOut),), errors=(404,)),
    Operation("POST", f"{T}/bulk/retry", tasks.bulk_retry,
              need.BULK_TASKS, "Retry every errored task a filter matches (needs :retry too)",
              (Reply(200, "The retried tasks", BulkOut),), errors=(404,)),
    Operation("POST", f"{T}/bulk/rerun", tasks.bulk_rerun,
              need.BULK_TASKS, "Fork every finished task a filter matches from one step "
              "(needs :create too)",
              (Reply(200, "The new tasks", BulkOut),), errors=(404,)),
    Operation("POST", f"{T}/{{id}}/retry", tasks.retry_task,
              need.RETRY_TASK, "Re-run the failed steps of an errored task",
              (Reply(200, "The task, pending again", TaskRecordOut),), errors=(409,)),
    Operation("POST", f"{T}/{{id}}/pause", pausing.pause_task,
              need.PAUSE_TASK, "Pause a task: running steps finish, no new step starts",
              (Reply(200, "The task, paused (repeating is no error)", TaskRecordOut),),
              errors=(409,)),
    Operation("POST", f"{T}/{{id}}/resume", pausing.resume_task,
              need.PAUSE_TASK, "Resume a paused task: its ready steps start at once",
              (Reply(200, "The task, resumed (repeating is no error)", TaskRecordOut),)),
    Operation("POST", "/tasker/handlers/{namespace}/{name}/pause", pausing.pause_handler,
              need.PAUSE_HANDLER, "Pause a handler: no step of its tasks, present and future, "
              "starts (optionally one version)",
              (Reply(200, "The handler's pauses", HandlerPauseOut),), tag="handlers"),
    Operation("POST", "/tasker/handlers/{namespace}/{name}/resume", pausing.resume_handler,
              need.PAUSE_HANDLER, "Resume a paused handler: its tasks' ready steps start at once",
              (Reply(200, "The handler's pauses", HandlerPauseOut),), tag="handlers"),
    Operation("POST", f"{T}/{{id}}/rerun", tasks.rerun_task,
              need.CREATE_TASK, "Fork a finished task: re-run it from a step with new input",
              (Reply(201, "The new task (forked_from = this one)", TaskOut, links=TASK_LINKS),),
              errors=(404, 409)),
    Operation("POST", f"{STEP}/retry", steps.retry_step,
              need.RETRY_STEP, "Re-run a failed step with a fresh attempt budget",
              (Reply(200, "The step, pending again", StepOut),), errors=(409,),
              tag="workflow_steps"),
    Operation("POST", f"{STEP}/resolve", steps.resolve_step,
              need.UPDATE_STEP, "Resolve a step by hand (its dependants proceed)",
              (Reply(200, "The resolved step", StepOut),), errors=(409,),
              tag="workflow_steps"),
    Operation("POST", f"{T}/{{id}}/signals/{{name}}", signals.send_signal,
              need.SIGNAL_TASK, "Deliver a signal to the task's wait_for step",
              (Reply(201, "Delivered: it completed the waiting step, or is kept until the "
                     "step is reached", SignalOut),
               Reply(200, "This signal_id was delivered before: the first delivery", SignalOut)),
              errors=(409,)),
    Operation("GET", f"{STEP}/items", steps.list_items,
              need.SHOW_STEP, "A page of a map step's items, in input order",
              (Reply(200, "The step's item progress and one page of its items", ItemPageOut),),
              errors=(422,), tag="workflow_steps"),
    Operation("GET", f"{T}/{{id}}/events", events.task_events,
              need.SHOW_TASK, "Stream a task's transitions (server-sent events)",
              (Reply(200, "Transition events, then one end event", EventOut | StreamEndOut,
                     media_type="text/event-stream"),
               Reply(204, "The task has stopped and nothing is newer than Last-Event-ID")),
              description=EVENTS),
    # --- schedules (DESIGN.md 7.2) ---
    *schedules_ops,
]
# fmt: on

DOCUMENTED: list[Operation] = [*OPERATIONS, *observability.operations]
"""Everything in /tasker/api-docs.json: these routes, and the analytics, health and metrics
operations that `rest_compat.observability` routes itself."""

PERMISSIONS: dict[tuple[str, str], str] = {(op.method, op.path): op.permission for op in DOCUMENTED}
"""(method, path template) -> the permission a caller needs, e.g. ("GET", "/tasker/tasks")."""

routes: list[BaseRoute] = [
    *routes_for(OPERATIONS),
    *docs_routes([*DOCUMENTED, *observability.public_operations]),
]
