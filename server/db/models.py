"""Tortoise models: the database is the source of truth for every task and step.

`status` columns are written only through the compare-and-set functions in `server.db.writes`;
history rows are append-only.
"""

from typing import Any

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model


class Namespace(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=128, unique=True)
    description = fields.TextField(null=True)

    class Meta:
        table = "tasker_namespaces"


class NamedTask(Model):
    id = fields.IntField(primary_key=True)
    namespace: fields.ForeignKeyRelation[Namespace] = fields.ForeignKeyField(
        "models.Namespace", related_name="named_tasks", on_delete=fields.CASCADE
    )
    name = fields.CharField(max_length=128)
    version = fields.CharField(max_length=64)
    description = fields.TextField(null=True)
    definition: fields.Field[Any] = fields.JSONField(default=dict)

    class Meta:
        table = "tasker_named_tasks"
        unique_together = (("namespace", "name", "version"),)


class NamedStep(Model):
    id = fields.IntField(primary_key=True)
    named_task: fields.ForeignKeyRelation[NamedTask] = fields.ForeignKeyField(
        "models.NamedTask", related_name="named_steps", on_delete=fields.CASCADE
    )
    name = fields.CharField(max_length=128)
    description = fields.TextField(null=True)
    handler_class = fields.CharField(max_length=255)

    class Meta:
        table = "tasker_named_steps"
        unique_together = (("named_task", "name"),)


class Task(Model):
    id = fields.UUIDField(primary_key=True)
    named_task: fields.ForeignKeyRelation[NamedTask] = fields.ForeignKeyField(
        "models.NamedTask", related_name="tasks", on_delete=fields.RESTRICT
    )
    # Denormalised so that every API filter is a single-table index scan.
    namespace = fields.CharField(max_length=128)
    name = fields.CharField(max_length=128)
    version = fields.CharField(max_length=64)
    status = fields.CharField(max_length=32, default="pending")
    context: fields.Field[Any] = fields.JSONField(null=True)
    initiator = fields.CharField(max_length=255, null=True)
    source_system = fields.CharField(max_length=255, null=True)
    reason = fields.TextField(null=True)
    tags: fields.Field[Any] = fields.JSONField(default=list)
    bypass_steps: fields.Field[Any] = fields.JSONField(default=list)
    idempotency_key = fields.CharField(max_length=255, null=True)
    # Whose key it is: a digest of the caller's token subject, '' in open mode. Keys are
    # unique per scope (a partial unique index, migration 8), so callers never share them.
    idempotency_scope = fields.CharField(max_length=64, default="", db_default="")
    identity_hash = fields.CharField(max_length=64, db_index=True)
    requested_at = fields.DatetimeField()
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    completed_at = fields.DatetimeField(null=True)
    remaining = fields.IntField(default=0, db_default=0)
    """Steps not yet complete or resolved: the completion that brings it to 0 finalizes."""
    run_at = fields.DatetimeField(null=True)
    """When a delayed task may start: no step is claimed before it (NULL: at once)."""
    schedule_id = fields.UUIDField(null=True)
    """The schedule that fired this task (NULL: created by a caller)."""
    scheduled_for = fields.DatetimeField(null=True)
    """The schedule's tick this task was fired for."""
    paused_at = fields.DatetimeField(null=True)
    """Paused by hand: no step of it is claimed until it is resumed (NULL: not paused)."""
    handler_paused_at = fields.DatetimeField(null=True)
    """Its handler is paused (`PausedHandler`): likewise no step is claimed."""
    debounce_key = fields.CharField(max_length=255, null=True)
    """A debounced task's key while its window is open; unique per handler among pending
    tasks (a partial unique index, migration 12)."""
    priority = fields.IntField(default=2, db_default=2)
    """1 (low) .. 3 (high): orders the hand-off of freed limit slots (`server.engine.limits`)."""
    concurrency_key = fields.CharField(max_length=255, null=True)
    """The key of its handler's concurrency limit (NULL: the handler declares none)."""
    forked_from = fields.UUIDField(null=True)
    """The task this one re-runs (`rerun`): its steps not downstream of the fork are copied."""
    parent_task_id = fields.UUIDField(null=True)
    """The task whose step started this one (`task:` steps, `step.start_task`)."""
    parent_step = fields.CharField(max_length=128, null=True)

    class Meta:
        table = "tasker_tasks"
        indexes = (
            Index(fields=("created_at", "id")),
            Index(fields=("status", "created_at")),
            Index(fields=("namespace", "name", "version", "created_at")),
            Index(fields=("namespace", "status", "created_at", "id")),
            Index(fields=("completed_at",)),
            Index(fields=("namespace", "name", "concurrency_key", "status")),
        )
        # One child per (parent task, parent step): starting a child is idempotent.
        unique_together = (("parent_task_id", "parent_step"),)


class WorkflowStep(Model):
    id = fields.BigIntField(primary_key=True)
    task: fields.ForeignKeyRelation[Task] = fields.ForeignKeyField(
        "models.Task", related_name="steps", on_delete=fields.CASCADE
    )
    name = fields.CharField(max_length=128)
    position = fields.IntField(default=0)
    handler_class = fields.CharField(max_length=255)
    status = fields.CharField(max_length=32, default="pending")
    attempts = fields.IntField(default=0)
    waiting_on = fields.IntField(default=0, db_default=0)
    """Parents not yet complete or resolved: the completion that brings it to 0 dispatches."""
    retry_limit = fields.IntField(default=3)
    retryable = fields.BooleanField(default=True)
    skippable = fields.BooleanField(default=False)
    skipped = fields.BooleanField(default=False, db_default=False)
    """Completed without running its handler (a false `run_if`)."""
    timeout_seconds = fields.FloatField(null=True)
    inputs: fields.Field[Any] = fields.JSONField(null=True)
    results: fields.Field[Any] = fields.JSONField(null=True)
    last_error = fields.TextField(null=True)
    error_class = fields.CharField(max_length=255, null=True)
    next_attempt_at = fields.DatetimeField(null=True)
    dispatched_at = fields.DatetimeField(null=True)
    lease_owner = fields.CharField(max_length=128, null=True)
    lease_expires_at = fields.DatetimeField(null=True)
    started_at = fields.DatetimeField(null=True)
    completed_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    flow: fields.Field[Any] = fields.JSONField(null=True)
    """The step's limits with their keys resolved at creation (`server.engine.limits`)."""
    wake_at = fields.DatetimeField(null=True)
    """A parked sleep / signal wait: no claim before this time (`server.domain.waits`)."""
    waits_for = fields.CharField(max_length=255, null=True)
    """The signal a `wait_for` step awaits (NULL for other steps)."""

    class Meta:
        table = "tasker_workflow_steps"
        unique_together = (("task", "name"),)
        indexes = (
            Index(fields=("status", "dispatched_at")),
            Index(fields=("status", "next_attempt_at")),
            Index(fields=("status", "lease_expires_at")),
            Index(fields=("completed_at",)),
        )


class StepItem(Model):
    """One item of a `map_over` step: claimed, retried and recorded on its own."""

    id = fields.BigIntField(primary_key=True)
    step: fields.ForeignKeyRelation[WorkflowStep] = fields.ForeignKeyField(
        "models.WorkflowStep", related_name="items", on_delete=fields.CASCADE
    )
    idx = fields.IntField()
    status = fields.CharField(max_length=32, default="pending")
    attempts = fields.IntField(default=0)
    item: fields.Field[Any] = fields.JSONField(null=True)
    results: fields.Field[Any] = fields.JSONField(null=True)
    last_error = fields.TextField(null=True)
    error_class = fields.CharField(max_length=255, null=True)
    next_attempt_at = fields.DatetimeField(null=True)
    dispatched_at = fields.DatetimeField(null=True)
    lease_owner = fields.CharField(max_length=128, null=True)
    lease_expires_at = fields.DatetimeField(null=True)
    started_at = fields.DatetimeField(null=True)
    completed_at = fields.DatetimeField(null=True)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "tasker_step_items"
        unique_together = (("step", "idx"),)
        indexes = (
            Index(fields=("step_id", "status", "dispatched_at", "idx")),
            Index(fields=("status", "lease_expires_at")),
            Index(fields=("status", "dispatched_at")),
        )


class StepEdge(Model):
    id = fields.BigIntField(primary_key=True)
    task: fields.ForeignKeyRelation[Task] = fields.ForeignKeyField(
        "models.Task", related_name="edges", on_delete=fields.CASCADE
    )
    from_step: fields.ForeignKeyRelation[WorkflowStep] = fields.ForeignKeyField(
        "models.WorkflowStep", related_name="child_edges", on_delete=fields.CASCADE
    )
    to_step: fields.ForeignKeyRelation[WorkflowStep] = fields.ForeignKeyField(
        "models.WorkflowStep", related_name="parent_edges", on_delete=fields.CASCADE
    )

    class Meta:
        table = "tasker_step_edges"
        # Every claim and completion looks edges up by step, `advance` by task; without these
        # indexes each lookup scanned the whole table, which dominated at scale.
        indexes = (
            Index(fields=("task_id",)),
            Index(fields=("from_step_id",)),
            Index(fields=("to_step_id",)),
        )


class Transition(Model):
    """Append-only history of task moves (step null) and step moves, one sequence for both."""

    id = fields.BigIntField(primary_key=True)
    task: fields.ForeignKeyRelation[Task] = fields.ForeignKeyField(
        "models.Task", related_name="transitions", on_delete=fields.CASCADE
    )
    step: fields.ForeignKeyNullableRelation[WorkflowStep] = fields.ForeignKeyField(
        "models.WorkflowStep", related_name="transitions", null=True, on_delete=fields.CASCADE
    )
    step_name = fields.CharField(max_length=128, null=True)
    from_status = fields.CharField(max_length=32, null=True)
    to_status = fields.CharField(max_length=32)
    reason = fields.TextField(null=True)
    metadata: fields.Field[Any] = fields.JSONField(default=dict)
    created_at = fields.DatetimeField()

    class Meta:
        table = "tasker_transitions"
        # (step_id): deleting a step cascades to its history through this column; unindexed,
        # every cascade (`tasker prune` deletes steps by the thousand) scans the whole table.
        indexes = (
            Index(fields=("task_id", "id")),
            Index(fields=("created_at",)),
            Index(fields=("step_id",)),
        )


class WorkerHeartbeat(Model):
    worker_id = fields.CharField(max_length=128, primary_key=True)
    hostname = fields.CharField(max_length=255)
    pid = fields.IntField()
    started_at = fields.DatetimeField()
    last_seen_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "tasker_workers"


class AnalyticsSlot(Model):
    """A rolled-up slot of the analytics: `span` seconds long (an hour or five minutes), the
    `slot`-th since the Unix epoch (UTC). Its key is (span, slot): Tortoise has no composite
    primary key, so the model declares `slot` as one and migration 7 declares the real key."""

    span = fields.IntField()
    slot = fields.BigIntField(primary_key=True, generated=False)
    rolled_at = fields.DatetimeField()

    class Meta:
        table = "tasker_analytics_slots"


class TaskSlot(Model):
    """Per slot and handler: tasks created (by `created_at`) and finished (by `completed_at`)."""

    id = fields.BigIntField(primary_key=True)
    span = fields.IntField()
    slot = fields.BigIntField()
    namespace = fields.CharField(max_length=128)
    name = fields.CharField(max_length=128)
    version = fields.CharField(max_length=64)
    created = fields.IntField(default=0)
    completed = fields.IntField(default=0)
    failed = fields.IntField(default=0)
    completed_ms = fields.FloatField(default=0)
    histogram = fields.TextField(default="{}")

    class Meta:
        table = "tasker_analytics_task_slots"
        unique_together = (("span", "slot", "namespace", "name", "version"),)


class StepSlot(Model):
    """Per slot, handler and step: the settled step runs that ended in the slot."""

    id = fields.BigIntField(primary_key=True)
    span = fields.IntField()
    slot = fields.BigIntField()
    namespace = fields.CharField(max_length=128)
    name = fields.CharField(max_length=128)
    version = fields.CharField(max_length=64)
    step_name = fields.CharField(max_length=128)
    runs = fields.IntField(default=0)
    sum_ms = fields.FloatField(default=0)
    max_ms = fields.FloatField(default=0)
    retried = fields.IntField(default=0)
    timeout_max = fields.FloatField(null=True)
    untimed = fields.IntField(default=0)
    retry_limit = fields.IntField(default=0)
    retried_ok = fields.IntField(default=0)
    last_ok = fields.IntField(default=0)
    exhausted = fields.IntField(default=0)
    errors = fields.TextField(default="{}")
    histogram = fields.TextField(default="{}")

    class Meta:
        table = "tasker_analytics_step_slots"
        unique_together = (("span", "slot", "namespace", "name", "version", "step_name"),)


class Schedule(Model):
    """A cron schedule that creates tasks of a handler (`server.services.schedules`)."""

    id = fields.UUIDField(primary_key=True)
    name = fields.CharField(max_length=128)
    namespace = fields.CharField(max_length=128)
    handler = fields.CharField(max_length=128)
    version = fields.CharField(max_length=64, null=True)
    cron = fields.CharField(max_length=256)
    timezone = fields.CharField(max_length=64, default="UTC")
    context: fields.Field[Any] = fields.JSONField(default=dict)
    catch_up = fields.CharField(max_length=16, default="latest")
    paused = fields.BooleanField(default=False)
    next_fire_at = fields.DatetimeField()
    source = fields.CharField(max_length=16, default="api")
    """`yaml` (declared in a handler file, upserted at start) or `api` (made at run time)."""
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "tasker_schedules"
        unique_together = (("namespace", "handler", "name"),)
        # Every firing pass asks for due schedules: one range scan on this index.
        indexes = (Index(fields=("paused", "next_fire_at")),)


class ScheduleFire(Model):
    """One fired tick: the unique (schedule_id, tick) row decides which process fires it."""

    id = fields.BigIntField(primary_key=True)
    schedule_id = fields.UUIDField()
    tick = fields.DatetimeField()
    task_id = fields.UUIDField()
    created_at = fields.DatetimeField()

    class Meta:
        table = "tasker_schedule_fires"
        unique_together = (("schedule_id", "tick"),)


class PausedHandler(Model):
    """A paused handler: its tasks, present and future, start no step until it is resumed."""

    id = fields.IntField(primary_key=True)
    namespace = fields.CharField(max_length=128)
    name = fields.CharField(max_length=128)
    version = fields.CharField(max_length=64, default="", db_default="")
    """'' pauses every version."""
    paused_at = fields.DatetimeField()

    class Meta:
        table = "tasker_paused_handlers"
        unique_together = (("namespace", "name", "version"),)


class LimitSlot(Model):
    """A step holding (`held`), offered (`offered`) or waiting for (`waiting`) a slot of a
    concurrency limit's key; a held row counts only while its step runs under `lease_owner`."""

    id = fields.BigIntField(primary_key=True)
    scope = fields.CharField(max_length=400)
    key = fields.CharField(max_length=255)
    step_id = fields.BigIntField()
    task_id = fields.UUIDField()
    state = fields.CharField(max_length=16)
    lease_owner = fields.CharField(max_length=128, null=True)
    limit = fields.IntField()
    priority = fields.IntField(default=2)
    created_at = fields.DatetimeField()
    offered_at = fields.DatetimeField(null=True)
    """When a waiting step was offered a freed slot (a lost offer is taken back later)."""

    class Meta:
        table = "tasker_limit_slots"
        indexes = (
            Index(fields=("scope", "key", "state")),
            Index(fields=("step_id",)),
            Index(fields=("task_id",), name="idx_tasker_limi_task_id"),  # built by migration 18
        )


class LimitKey(Model):
    """One flow-control key: the slots taken (`held` + `offered` rows), the steps waiting, and
    a rate limit's recent starts (`[epoch seconds, count]` buckets, `server.domain.rate_window`).
    The PostgreSQL claim locks this row and tests it in one statement
    (`server.engine.pg_flow_sql`)."""

    id = fields.BigIntField(primary_key=True)
    scope = fields.CharField(max_length=400)
    key = fields.CharField(max_length=255)
    in_use = fields.IntField(default=0, db_default=0)
    waiting = fields.IntField(default=0, db_default=0)
    starts: fields.Field[Any] = fields.JSONField(default=list)

    class Meta:
        table = "tasker_limit_keys"
        unique_together = (("scope", "key"),)


class Signal(Model):
    """A signal delivered to a task: kept until a `wait_for` step of that name consumes it."""

    id = fields.BigIntField(primary_key=True)
    task: fields.ForeignKeyRelation[Task] = fields.ForeignKeyField(
        "models.Task", related_name="signals", on_delete=fields.CASCADE
    )
    name = fields.CharField(max_length=255)
    signal_id = fields.CharField(max_length=255)
    """The sender's id for this delivery: the same id twice is delivered once."""
    payload: fields.Field[Any] = fields.JSONField(null=True)
    received_at = fields.DatetimeField()
    consumed_by: fields.ForeignKeyNullableRelation[WorkflowStep] = fields.ForeignKeyField(
        "models.WorkflowStep", related_name="signals", null=True, on_delete=fields.SET_NULL
    )
    consumed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "tasker_signals"
        unique_together = (("task", "signal_id"),)
        indexes = (Index(fields=("consumed_by_id",)),)
