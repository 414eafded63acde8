"""Indexes for analytics at scale, and for the step-edge lookups on the hot path.

- `tasker_step_edges` (task_id), (from_step_id), (to_step_id): claims and completions look
  edges up by step and `advance` by task; without these each was a sequential scan of every
  edge (about 100 ms per lookup with 3 million edges). Declared on the model as well.
- `tasker_workflow_steps` (created_at, task_id) WHERE attempts > 1: "tasks retried in the last
  24 h" is a range scan of this small partial index (a step is created with its task, so they
  share `created_at`) instead of a probe into every step. Tortoise cannot declare a partial
  index with a range condition, so it lives here only.

The SQL is the same on PostgreSQL and SQLite (both have partial indexes and IF NOT EXISTS), so
unlike the initial migration there is one script for both dialects.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

_INDEXES = """
CREATE INDEX IF NOT EXISTS "idx_tasker_step_task_id_3f1b9d" ON "tasker_step_edges" ("task_id");
CREATE INDEX IF NOT EXISTS "idx_tasker_step_from_st_99dea9" ON "tasker_step_edges" ("from_step_id");
CREATE INDEX IF NOT EXISTS "idx_tasker_step_to_step_851c50" ON "tasker_step_edges" ("to_step_id");
CREATE INDEX IF NOT EXISTS "idx_tasker_work_retried_at" ON "tasker_workflow_steps"
    ("created_at", "task_id") WHERE "attempts" > 1;
"""

_DROP = """
DROP INDEX IF EXISTS "idx_tasker_work_retried_at";
DROP INDEX IF EXISTS "idx_tasker_step_to_step_851c50";
DROP INDEX IF EXISTS "idx_tasker_step_from_st_99dea9";
DROP INDEX IF EXISTS "idx_tasker_step_task_id_3f1b9d";
"""


async def upgrade(db: BaseDBAsyncClient) -> str:
    return _INDEXES


async def downgrade(db: BaseDBAsyncClient) -> str:
    return _DROP
