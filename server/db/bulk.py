"""Multi-row INSERT ... RETURNING: many rows of one table in one statement, their ids back.

Tortoise's `bulk_create` returns no ids (creation then read them back with another query)
and `Model.create` costs a round trip per row. Here one statement writes up to
`MAX_PARAMETERS` values (both drivers cap a statement's parameters near 32,767) and returns
the columns asked for. Values go through each field's `to_db_value`, as Tortoise's own
inserts do, so rows written here read back the same as rows written by the ORM.

RETURNING's row order is unspecified (SQLite says so): callers key the rows they get back by
a returned column, never by position.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.models import Model

from server.db.sql import Row, dialect

MAX_PARAMETERS = 30_000


async def insert_rows(
    conn: BaseDBAsyncClient,
    model: type[Model],
    rows: Sequence[Mapping[str, Any]],
    returning: Sequence[str] = (),
    *,
    skip_conflicts_on: str | None = None,
) -> list[Row]:
    """Insert `rows` (dicts of field name -> value, all with the same keys; a field left out
    takes the model's default) and return `returning` of each inserted row, in no order.

    `skip_conflicts_on`: an SQL conflict target (`("a", "b") WHERE ...`); rows that would
    break that unique index are skipped (and not returned) instead of failing the statement.
    """
    if not rows:
        return []
    given = set(rows[0])
    names = [
        n
        for n, f in model._meta.fields_map.items()
        if n in model._meta.fields_db_projection and (n in given or f.default is not None)
    ]
    defaults = {n: model._meta.fields_map[n].default for n in names if n not in given}
    fields = [model._meta.fields_map[n] for n in names]
    columns = ", ".join(f'"{f.source_field or f.model_field_name}"' for f in fields)
    per_statement = max(1, MAX_PARAMETERS // len(names))
    postgres = dialect(conn) == "postgres"
    tail = f" ON CONFLICT {skip_conflicts_on} DO NOTHING" if skip_conflicts_on else ""
    if returning:
        tail += " RETURNING " + ", ".join(f'"{c}"' for c in returning)
    out: list[Row] = []
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        values: list[Any] = []
        groups = []
        for row in chunk:
            marks = []
            for name, field in zip(names, fields, strict=True):
                value = row[name] if name in given else defaults[name]
                values.append(field.to_db_value(value() if callable(value) else value, model))
                marks.append(f"${len(values)}" if postgres else "?")
            groups.append("(" + ", ".join(marks) + ")")
        sql = f'INSERT INTO "{model._meta.db_table}" ({columns}) VALUES {", ".join(groups)}{tail}'
        if returning:
            # execute_query drops the rows of an INSERT on asyncpg; this one fetches them.
            out.extend(await conn.execute_query_dict(sql, values))
        else:
            await conn.execute_query(sql, values)
    return out
