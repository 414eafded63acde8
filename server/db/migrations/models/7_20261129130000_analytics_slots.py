"""Analytics rollups by slot: hours, and five-minute slots at the edges of report windows.

Succeeds migration 4's hourly tables. A report window's partial first and last hours used to
be read raw from the steps table; at a million tasks that was most of the bottleneck report
(issue 7). Now those margins come from five-minute rollups, so at most a few minutes are read
raw. Every table gains `span` (the slot's length in seconds: 3600 or 300), and `hour` becomes
`slot` (spans since the Unix epoch, UTC):
- `tasker_analytics_slots`: one row per (span, slot) rolled up; inserting it is the claim to
  roll that slot, in the same transaction as the slot's rows.
- `tasker_analytics_task_slots`, per (span, slot, handler): `created` counts tasks by the slot
  of `created_at`; `completed`, `failed`, `completed_ms` and `histogram` (of the completed
  ones' durations) count tasks by the slot of `completed_at`.
- `tasker_analytics_step_slots`, per (span, slot, handler, step): step runs by the slot of the
  step's `completed_at`, with the bottleneck report's figures; `errors` is
  `{error_class: failed attempts}`.

Rollups are derived data, rebuilt on first use and by the sweeper: nothing is copied, and
applying this is instant whatever the size of the history. Migration 4's tables are left in
place, unread: servers of the previous version keep using them until they are replaced, and
they are dropped one release later (docs/operations.md, "Upgrades and migrations").
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

def _tables(serial: str, real: str, stamp: str) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS "tasker_analytics_slots" (
    "span" INT NOT NULL,
    "slot" BIGINT NOT NULL,
    "rolled_at" {stamp} NOT NULL,
    PRIMARY KEY ("span", "slot")
);
CREATE TABLE IF NOT EXISTS "tasker_analytics_task_slots" (
    "id" {serial},
    "span" INT NOT NULL,
    "slot" BIGINT NOT NULL,
    "namespace" VARCHAR(128) NOT NULL,
    "name" VARCHAR(128) NOT NULL,
    "version" VARCHAR(64) NOT NULL,
    "created" INT NOT NULL DEFAULT 0,
    "completed" INT NOT NULL DEFAULT 0,
    "failed" INT NOT NULL DEFAULT 0,
    "completed_ms" {real} NOT NULL DEFAULT 0,
    "histogram" TEXT NOT NULL DEFAULT '{{}}',
    CONSTRAINT "uid_tasker_anal_task_slot" UNIQUE ("span", "slot", "namespace", "name", "version")
);
CREATE TABLE IF NOT EXISTS "tasker_analytics_step_slots" (
    "id" {serial},
    "span" INT NOT NULL,
    "slot" BIGINT NOT NULL,
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
    CONSTRAINT "uid_tasker_anal_step_slot"
        UNIQUE ("span", "slot", "namespace", "name", "version", "step_name")
);
"""


async def upgrade(db: BaseDBAsyncClient) -> str:
    if db.capabilities.dialect == "postgres":
        return _tables("BIGSERIAL NOT NULL PRIMARY KEY", "DOUBLE PRECISION", "TIMESTAMPTZ")
    return _tables("INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL", "REAL", "TIMESTAMP")


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
DROP TABLE IF EXISTS "tasker_analytics_step_slots";
DROP TABLE IF EXISTS "tasker_analytics_task_slots";
DROP TABLE IF EXISTS "tasker_analytics_slots";
"""
