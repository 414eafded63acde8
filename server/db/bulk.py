"""Multi-row INSERT ... RETURNING: many rows of one table in one statement, their ids back.

Tortoise's `bulk_create` returns no ids (creation then read them back with another query)
and `Model.create` costs a round trip per row. Here one statement writes up to
`MAX_PARAMETERS` values (both drivers cap a statement's parameters near 32,767) and returns
the columns asked for. Values are converted as Tortoise's own inserts convert them (JSON
encoded by the field's encoder, UUIDs as text, the rest as they are), so rows written here
read back the same as rows written by the ORM; the per-value validation Tortoise repeats on
every insert is skipped: the callers build these rows from already validated input.

RETURNING's row order is unspecified (SQLite says so): callers key the rows they get back by
a returned column, never by position.
"""

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.fields import Field, JSONField, UUIDField
from tortoise.models import Model

from server.db.sql import Row, dialect

MAX_PARAMETERS = 30_000
Convert = Callable[[Any], Any]


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
    width = len(_layout(model, tuple(rows[0]))[0])
    per_statement = max(1, MAX_PARAMETERS // width)
    postgres = dialect(conn) == "postgres"
    tail = f" ON CONFLICT {skip_conflicts_on} DO NOTHING" if skip_conflicts_on else ""
    if returning:
        tail += " RETURNING " + ", ".join(f'"{c}"' for c in returning)
    out: list[Row] = []
    for start in range(0, len(rows), per_statement):
        values: list[Any] = []
        sql = insert_sql(model, rows[start : start + per_statement], values, postgres) + tail
        if returning:
            # execute_query drops the rows of an INSERT on asyncpg; this one fetches them.
            out.extend(await conn.execute_query_dict(sql, values))
        else:
            await conn.execute_query(sql, values)
    return out


def insert_sql(
    model: type[Model],
    rows: Sequence[Mapping[str, Any]],
    values: list[Any],
    postgres: bool,
    computed: Mapping[str, str] | None = None,
) -> str:
    """`INSERT INTO table (columns) VALUES (...), (...)` for `rows`, their values appended to
    `values` (PostgreSQL placeholders numbered after the ones already there), so several
    inserts can share one statement.

    `computed` (PostgreSQL): field name -> an SQL expression written in that field's place in
    every row, where `{field}` stands for the row's own value of a field (its placeholder)."""
    names, columns, converters, defaults = _layout(model, tuple(rows[0]))
    first = len(values)
    for row in rows:
        for name, convert in zip(names, converters, strict=True):
            value = row[name] if name in row else defaults[name]()
            values.append(convert(value) if value is not None else None)
    if computed:
        width = len(names)
        groups = ", ".join(_row_sql(names, computed, first + r * width) for r in range(len(rows)))
    else:
        groups = _placeholders(len(rows), len(names), postgres, first)
    return f'INSERT INTO "{model._meta.db_table}" ({columns}) VALUES {groups}'


def _row_sql(names: Sequence[str], computed: Mapping[str, str], first: int) -> str:
    """One row's `($n, ..., <expression>, ...)`, its placeholders numbered from `first` + 1."""
    own = {name: f"${first + c + 1}" for c, name in enumerate(names)}
    return (
        "(" + ", ".join(computed[n].format(**own) if n in computed else own[n] for n in names) + ")"
    )


@functools.cache
def _layout(
    model: type[Model], given: tuple[str, ...]
) -> tuple[list[str], str, list[Convert], dict[str, Callable[[], Any]]]:
    """The fields an insert of rows with keys `given` writes: names, the SQL column list,
    a converter each, and a default maker for those not given."""
    fields = model._meta.fields_map
    names = [
        n
        for n, f in fields.items()
        if n in model._meta.fields_db_projection and (n in given or f.default is not None)
    ]
    columns = ", ".join(f'"{model._meta.fields_db_projection[n]}"' for n in names)
    defaults = {n: _default(fields[n]) for n in names if n not in given}
    return names, columns, [_converter(fields[n]) for n in names], defaults


def _default(field: Field[Any]) -> Callable[[], Any]:
    default = field.default
    return default if callable(default) else lambda: default


def _converter(field: Field[Any]) -> Convert:
    if isinstance(field, JSONField):
        return field.encoder
    if isinstance(field, UUIDField):
        return str
    return _same


def _same(value: Any) -> Any:
    return value


@functools.lru_cache(maxsize=256)
def _placeholders(rows: int, width: int, postgres: bool, first: int = 0) -> str:
    """`($1, $2), ($3, $4)` (PostgreSQL, numbered from `first` + 1) or `(?, ?), (?, ?)`."""
    if not postgres:
        group = "(" + ", ".join("?" * width) + ")"
        return ", ".join([group] * rows)
    return ", ".join(
        "(" + ", ".join(f"${first + r * width + c + 1}" for c in range(width)) + ")"
        for r in range(rows)
    )
