"""Drop `tasker_limit_starts`: a rate limit's starts are kept on its key's row only.

Every start of a rate-limited step was written twice: a row here, and the key row's `starts`
(the epoch seconds inside the window and a while past it, migration 17), which is what a
claim reads under the key's lock. Every reader now reads the key row (the portable claim,
the usage read of `GET /tasker/limits`), so a start costs no insert and no later delete.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    return 'DROP TABLE IF EXISTS "tasker_limit_starts";'


async def downgrade(db: BaseDBAsyncClient) -> str:
    serial = (
        "BIGSERIAL NOT NULL PRIMARY KEY"
        if db.capabilities.dialect == "postgres"
        else "INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL"
    )
    stamp = "TIMESTAMPTZ" if db.capabilities.dialect == "postgres" else "TIMESTAMP"
    return f"""
CREATE TABLE IF NOT EXISTS "tasker_limit_starts" (
    "id" {serial},
    "scope" VARCHAR(400) NOT NULL,
    "key" VARCHAR(255) NOT NULL,
    "step_id" BIGINT NOT NULL,
    "started_at" {stamp} NOT NULL
);
CREATE INDEX IF NOT EXISTS "idx_tasker_limi_scope_k_5d0c8e"
    ON "tasker_limit_starts" ("scope", "key", "started_at");
"""
