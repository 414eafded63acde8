"""Hourly analytics rollups (issue 6): the reports read closed hours from these tables.

- `tasker_analytics_hours`: one row per hour that has been rolled up (hours since the Unix
  epoch, UTC). Inserting it is the claim to roll that hour; it is written in the same
  transaction as the hour's rows, so an hour is either fully rolled up or not at all.
- `tasker_analytics_task_hours`, per (hour, handler): `created` counts tasks by the hour of
  `created_at`; `completed`, `failed`, `completed_ms` (sum of durations) and `histogram` (of
  the completed ones' durations) count tasks by the hour of `completed_at`.
- `tasker_analytics_step_hours`, per (hour, handler, step): step runs by the hour of the
  step's `completed_at`, with the figures of the bottleneck report (see
  `server.db.analytics_rollup`); `errors` is `{error_class: failed attempts}`.

Nothing is backfilled here: hours are rolled up on first use and by the sweeper, so applying
the migration is instant whatever the size of the history.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


def _tables(serial: str, real: str, stamp: str) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS "tasker_analytics_hours" (
    "hour" BIGINT NOT NULL PRIMARY KEY,
    "rolled_at" {stamp} NOT NULL
);
CREATE TABLE IF NOT EXISTS "tasker_analytics_task_hours" (
    "id" {serial},
    "hour" BIGINT NOT NULL,
    "namespace" VARCHAR(128) NOT NULL,
    "name" VARCHAR(128) NOT NULL,
    "version" VARCHAR(64) NOT NULL,
    "created" INT NOT NULL DEFAULT 0,
    "completed" INT NOT NULL DEFAULT 0,
    "failed" INT NOT NULL DEFAULT 0,
    "completed_ms" {real} NOT NULL DEFAULT 0,
    "histogram" TEXT NOT NULL DEFAULT '{{}}',
    CONSTRAINT "uid_tasker_anal_task_hour" UNIQUE ("hour", "namespace", "name", "version")
);
CREATE TABLE IF NOT EXISTS "tasker_analytics_step_hours" (
    "id" {serial},
    "hour" BIGINT NOT NULL,
    "namespace" VARCHAR(128) NOT NULL,
    "name" VARCHAR(128) NOT NULL,
    "version" VARCHAR(64) NOT NULL,
    "step_name" VARCHAR(128) NOT NULL,
    "runs" INT NOT NULL DEFAULT 0,
    "sum_ms" {real} NOT NULL DEFAULT 0,
    "max_ms" {real} NOT NULL DEFAULT 0,
    "retried" INT NOT NULL DEFAULT 0,
    "timeout_max" {real},
    "untimed" INT NOT NULL DEFAULT 0,
    "retry_limit" INT NOT NULL DEFAULT 0,
    "retried_ok" INT NOT NULL DEFAULT 0,
    "last_ok" INT NOT NULL DEFAULT 0,
    "exhausted" INT NOT NULL DEFAULT 0,
    "errors" TEXT NOT NULL DEFAULT '{{}}',
    "histogram" TEXT NOT NULL DEFAULT '{{}}',
    CONSTRAINT "uid_tasker_anal_step_hour" UNIQUE ("hour", "namespace", "name", "version", "step_name")
);
"""


async def upgrade(db: BaseDBAsyncClient) -> str:
    if db.capabilities.dialect == "postgres":
        return _tables("BIGSERIAL NOT NULL PRIMARY KEY", "DOUBLE PRECISION", "TIMESTAMPTZ")
    return _tables("INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL", "REAL", "TIMESTAMP")


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
DROP TABLE IF EXISTS "tasker_analytics_step_hours";
DROP TABLE IF EXISTS "tasker_analytics_task_hours";
DROP TABLE IF EXISTS "tasker_analytics_hours";
"""
