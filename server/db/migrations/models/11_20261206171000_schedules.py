"""Cron schedules: `tasker_schedules`, `tasker_schedule_fires`, and the task columns
`schedule_id` / `scheduled_for`.

`tasker_schedule_fires` holds one row per fired (schedule_id, tick); its unique index is what
makes a tick fire once however many processes look for due schedules: the row is inserted in
the same transaction that creates the task, so a second process's insert fails and its task
is rolled back with it. No foreign keys: a deleted schedule's fires and tasks keep their
history. The (paused, next_fire_at) index serves the one query every firing pass makes.

New tables and nullable columns without defaults: instant on PostgreSQL (no table rewrite).
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

POSTGRES = """
ALTER TABLE "tasker_tasks" ADD COLUMN IF NOT EXISTS "schedule_id" UUID;
ALTER TABLE "tasker_tasks" ADD COLUMN IF NOT EXISTS "scheduled_for" TIMESTAMPTZ;
CREATE TABLE IF NOT EXISTS "tasker_schedules" (
    "id" UUID NOT NULL PRIMARY KEY,
    "name" VARCHAR(128) NOT NULL,
    "namespace" VARCHAR(128) NOT NULL,
    "handler" VARCHAR(128) NOT NULL,
    "version" VARCHAR(64),
    "cron" VARCHAR(256) NOT NULL,
    "timezone" VARCHAR(64) NOT NULL DEFAULT 'UTC',
    "context" JSONB NOT NULL,
    "catch_up" VARCHAR(16) NOT NULL DEFAULT 'latest',
    "paused" BOOL NOT NULL DEFAULT False,
    "next_fire_at" TIMESTAMPTZ NOT NULL,
    "source" VARCHAR(16) NOT NULL DEFAULT 'api',
    "created_at" TIMESTAMPTZ NOT NULL,
    "updated_at" TIMESTAMPTZ NOT NULL,
    CONSTRAINT "uid_tasker_sche_namespa_schedule" UNIQUE ("namespace", "handler", "name")
);
CREATE INDEX IF NOT EXISTS "idx_tasker_sche_paused_c5bc82" ON "tasker_schedules" ("paused", "next_fire_at");
CREATE TABLE IF NOT EXISTS "tasker_schedule_fires" (
    "id" BIGSERIAL NOT NULL PRIMARY KEY,
    "schedule_id" UUID NOT NULL,
    "tick" TIMESTAMPTZ NOT NULL,
    "task_id" UUID NOT NULL,
    "created_at" TIMESTAMPTZ NOT NULL,
    CONSTRAINT "uid_tasker_sche_schedul_tick" UNIQUE ("schedule_id", "tick")
);
"""

SQLITE = """
ALTER TABLE "tasker_tasks" ADD COLUMN "schedule_id" CHAR(36);
ALTER TABLE "tasker_tasks" ADD COLUMN "scheduled_for" TIMESTAMP;
CREATE TABLE IF NOT EXISTS "tasker_schedules" (
    "id" CHAR(36) NOT NULL PRIMARY KEY,
    "name" VARCHAR(128) NOT NULL,
    "namespace" VARCHAR(128) NOT NULL,
    "handler" VARCHAR(128) NOT NULL,
    "version" VARCHAR(64),
    "cron" VARCHAR(256) NOT NULL,
    "timezone" VARCHAR(64) NOT NULL DEFAULT 'UTC',
    "context" JSON NOT NULL,
    "catch_up" VARCHAR(16) NOT NULL DEFAULT 'latest',
    "paused" INT NOT NULL DEFAULT 0,
    "next_fire_at" TIMESTAMP NOT NULL,
    "source" VARCHAR(16) NOT NULL DEFAULT 'api',
    "created_at" TIMESTAMP NOT NULL,
    "updated_at" TIMESTAMP NOT NULL,
    CONSTRAINT "uid_tasker_sche_namespa_schedule" UNIQUE ("namespace", "handler", "name")
);
CREATE INDEX IF NOT EXISTS "idx_tasker_sche_paused_c5bc82" ON "tasker_schedules" ("paused", "next_fire_at");
CREATE TABLE IF NOT EXISTS "tasker_schedule_fires" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "schedule_id" CHAR(36) NOT NULL,
    "tick" TIMESTAMP NOT NULL,
    "task_id" CHAR(36) NOT NULL,
    "created_at" TIMESTAMP NOT NULL,
    CONSTRAINT "uid_tasker_sche_schedul_tick" UNIQUE ("schedule_id", "tick")
);
"""


async def upgrade(db: BaseDBAsyncClient) -> str:
    return POSTGRES if db.capabilities.dialect == "postgres" else SQLITE


async def downgrade(db: BaseDBAsyncClient) -> str:
    return (
        'DROP TABLE IF EXISTS "tasker_schedule_fires"; DROP TABLE IF EXISTS "tasker_schedules"; '
        'ALTER TABLE "tasker_tasks" DROP COLUMN "scheduled_for"; '
        'ALTER TABLE "tasker_tasks" DROP COLUMN "schedule_id";'
    )
