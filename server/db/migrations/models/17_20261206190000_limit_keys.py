"""One row per flow-control key: what a single-statement claim reads and writes.

`tasker_limit_keys` holds, per (limit scope, key), the slots taken (`in_use`: the key's `held`
and `offered` rows in `tasker_limit_slots`), the steps waiting (`waiting`: its `waiting` rows)
and, for a rate limit, the starts still inside the sliding window (`starts`: epoch seconds).
A claim locks the row and tests it in the same statement: under READ COMMITTED a locked row is
re-read at its newest version, so two claims racing for the last slot see each other, where a
count of the slot rows in the statement's snapshot would not.

`tasker_limit_slots.offered_at`: when a waiting step was offered a freed slot (a lost offer is
taken back after the re-dispatch window), so that an offer need not write the waiter's step row.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


def _sql(serial: str, stamp: str, json: str) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS "tasker_limit_keys" (
    "id" {serial},
    "scope" VARCHAR(400) NOT NULL,
    "key" VARCHAR(255) NOT NULL,
    "in_use" INT NOT NULL DEFAULT 0,
    "waiting" INT NOT NULL DEFAULT 0,
    "starts" {json} NOT NULL DEFAULT '[]',
    CONSTRAINT "uid_tasker_limit_key_scope_key" UNIQUE ("scope", "key")
);
ALTER TABLE "tasker_limit_slots" ADD COLUMN "offered_at" {stamp};
"""


async def upgrade(db: BaseDBAsyncClient) -> str:
    if db.capabilities.dialect == "postgres":
        return _sql("BIGSERIAL NOT NULL PRIMARY KEY", "TIMESTAMPTZ", "JSONB")
    return _sql("INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL", "TIMESTAMP", "JSON")


async def downgrade(db: BaseDBAsyncClient) -> str:
    return (
        'DROP TABLE IF EXISTS "tasker_limit_keys";'
        ' ALTER TABLE "tasker_limit_slots" DROP COLUMN "offered_at";'
    )
