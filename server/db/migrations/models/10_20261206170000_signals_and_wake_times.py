"""Durable sleep and signals: a step's wake time and awaited signal, and the signals table.

`tasker_workflow_steps.wake_at`: a parked `sleep` / `wait_for` step is pending with a wake
time; neither step store claims it before then. `waits_for`: the signal name a `wait_for`
step awaits (NULL for other steps), so a signal finds its step without the handler file.
Both nullable without a default: instant on PostgreSQL (no table rewrite). The partial index
on `wake_at` lets the sweeper leave sleeping tasks alone without reading them one by one.

`tasker_signals`: one row per delivered signal, unique per (task, signal_id) so a repeated
delivery is recorded once; `consumed_by` is the step that took it (NULL: kept until a step
reaches its wait).
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

PG = """
ALTER TABLE "tasker_workflow_steps" ADD COLUMN IF NOT EXISTS "wake_at" TIMESTAMPTZ;
ALTER TABLE "tasker_workflow_steps" ADD COLUMN IF NOT EXISTS "waits_for" VARCHAR(255);
CREATE INDEX IF NOT EXISTS "idx_tasker_work_wake_at_parked" ON "tasker_workflow_steps"
    ("task_id") WHERE "wake_at" IS NOT NULL;
CREATE TABLE IF NOT EXISTS "tasker_signals" (
    "id" BIGSERIAL NOT NULL PRIMARY KEY,
    "task_id" UUID NOT NULL REFERENCES "tasker_tasks" ("id") ON DELETE CASCADE,
    "name" VARCHAR(255) NOT NULL,
    "signal_id" VARCHAR(255) NOT NULL,
    "payload" JSONB,
    "received_at" TIMESTAMPTZ NOT NULL,
    "consumed_by_id" BIGINT REFERENCES "tasker_workflow_steps" ("id") ON DELETE SET NULL,
    "consumed_at" TIMESTAMPTZ,
    CONSTRAINT "uid_tasker_sign_task_id_signal" UNIQUE ("task_id", "signal_id")
);
CREATE INDEX IF NOT EXISTS "idx_tasker_sign_consume_4c1d2e" ON "tasker_signals"
    ("consumed_by_id");
"""

SQLITE = """
ALTER TABLE "tasker_workflow_steps" ADD COLUMN "wake_at" TIMESTAMP;
ALTER TABLE "tasker_workflow_steps" ADD COLUMN "waits_for" VARCHAR(255);
CREATE INDEX IF NOT EXISTS "idx_tasker_work_wake_at_parked" ON "tasker_workflow_steps"
    ("task_id") WHERE "wake_at" IS NOT NULL;
CREATE TABLE IF NOT EXISTS "tasker_signals" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "task_id" CHAR(36) NOT NULL REFERENCES "tasker_tasks" ("id") ON DELETE CASCADE,
    "name" VARCHAR(255) NOT NULL,
    "signal_id" VARCHAR(255) NOT NULL,
    "payload" JSON,
    "received_at" TIMESTAMP NOT NULL,
    "consumed_by_id" BIGINT REFERENCES "tasker_workflow_steps" ("id") ON DELETE SET NULL,
    "consumed_at" TIMESTAMP,
    CONSTRAINT "uid_tasker_sign_task_id_signal" UNIQUE ("task_id", "signal_id")
);
CREATE INDEX IF NOT EXISTS "idx_tasker_sign_consume_4c1d2e" ON "tasker_signals"
    ("consumed_by_id");
"""


async def upgrade(db: BaseDBAsyncClient) -> str:
    return PG if db.capabilities.dialect == "postgres" else SQLITE


async def downgrade(db: BaseDBAsyncClient) -> str:
    if db.capabilities.dialect == "postgres":
        return (
            'DROP TABLE IF EXISTS "tasker_signals"; '
            'DROP INDEX IF EXISTS "idx_tasker_work_wake_at_parked"; '
            'ALTER TABLE "tasker_workflow_steps" DROP COLUMN "wake_at"; '
            'ALTER TABLE "tasker_workflow_steps" DROP COLUMN "waits_for";'
        )
    return (
        'DROP TABLE IF EXISTS "tasker_signals"; '
        'DROP INDEX IF EXISTS "idx_tasker_work_wake_at_parked"; '
        'ALTER TABLE "tasker_workflow_steps" DROP COLUMN "wake_at"; '
        'ALTER TABLE "tasker_workflow_steps" DROP COLUMN "waits_for";'
    )
