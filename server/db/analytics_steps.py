"""The step figures of the bottleneck report: rolled slots plus the live step runs.

Per (handler, step) the figures of `slowest_steps` and of the advice, and the error patterns:
sums and maxima from the rollups and one pass over the live runs (grouped by error class and
duration bucket too, so that it also gives their histograms); then a 95th percentile only for
the steps whose slowest run could put it near the timeout (`needs_p95`), from merged duration
histograms.
"""

from collections import defaultdict
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient as Conn

from server.db.analytics_rollup import FAILURES, KEYS, rolled_sql, scope_sql, step_runs
from server.db.rolled_blocks import RolledBlockCache
from server.db.sql import Query, bucket_of, in_ranges, json_entries, state
from server.domain.analytics import BottleneckScope, ErrorPattern
from server.domain.analytics_advice import StepStats, needs_p95
from server.domain.analytics_rollup import Block, Histogram, Split
from server.domain.states import StepState

Key = tuple[str, ...]
SUMS = ("runs", "sum_ms", "retried", "retried_ok", "last_ok", "exhausted", "timed_out")
MAXIMA = ("max_ms", "timeout", "retry_limit")


def live_runs(q: Query, scope: BottleneckScope, split: Split) -> str:
    """The window's step runs that are not in the rollups: those in the live ranges, and the
    failures with a retry scheduled (rollups skip them: their next attempt moves them)."""
    parts = [
        step_runs(q, in_ranges(q, "s.completed_at", [(start, end)]), end) + scope_sql(q, scope)
        for start, end in split.live
    ]
    if split.rolled:
        where = (
            f"s.completed_at >= {q(split.rolled_start)} "
            f"AND s.completed_at < {q(split.rolled_end)} "
            f"AND s.status = {state(StepState.ERROR)} AND s.next_attempt_at IS NOT NULL"
        )
        parts.append(step_runs(q, where, many=False) + scope_sql(q, scope))
    return " UNION ALL ".join(parts)


class Figures:
    """Per-step accumulators, fed by rolled and live rows alike."""

    def __init__(self, default_timeout: float) -> None:
        self.default_timeout = default_timeout
        self.steps: dict[Key, dict[str, float]] = {}
        self.errors: dict[str, tuple[int, set[str]]] = {}

    def add(self, key: Key, row: dict[str, Any]) -> None:
        acc = self.steps.setdefault(key, dict.fromkeys(SUMS + MAXIMA, 0.0))
        for name in SUMS:
            acc[name] += float(row.get(name) or 0)
        for name in MAXIMA:
            acc[name] = max(acc[name], float(row.get(name) or 0))

    def fail(self, key: Key, error_class: str | None, failed: int) -> None:
        if error_class is None or failed <= 0:
            return
        if error_class == "StepTimeout":
            self.steps[key]["timed_out"] += failed
        count, names = self.errors.get(error_class, (0, set()))
        self.errors[error_class] = (count + failed, names | {key[3]})

    def candidates(self) -> list[Key]:
        return [
            key
            for key, acc in self.steps.items()
            if needs_p95(int(acc["runs"]), acc["max_ms"], acc["timeout"])
        ]

    def stats(self, p95s: dict[Key, int | None]) -> list[StepStats]:
        return [
            StepStats(
                task_name=key[1],
                step_name=key[3],
                runs=int(acc["runs"]),
                avg_duration_ms=round(acc["sum_ms"] / acc["runs"]),
                p95_duration_ms=p95s.get(key),
                retried=int(acc["retried"]),
                timeout_seconds=acc["timeout"],
                timed_out=int(acc["timed_out"]),
                retry_limit=int(acc["retry_limit"]),
                retried_successes=int(acc["retried_ok"]),
                last_attempt_successes=int(acc["last_ok"]),
                exhausted=int(acc["exhausted"]),
            )
            for key, acc in self.steps.items()
            if acc["runs"] > 0
        ]

    def patterns(self) -> list[ErrorPattern]:
        found = [ErrorPattern(k, n, sorted(names)) for k, (n, names) in self.errors.items()]
        return sorted(found, key=lambda e: (-e.frequency, e.error_type))


async def step_figures(
    conn: Conn, memo: RolledBlockCache, scope: BottleneckScope, split: Split, default_timeout: float
) -> tuple[list[StepStats], list[ErrorPattern]]:
    """The window's per-step figures and error patterns."""
    figures = Figures(default_timeout)
    await _rolled(conn, memo, scope, split, figures)
    q = Query(conn)
    timeout = q(float(default_timeout))
    keys = ", ".join(KEYS)
    complete = state(StepState.COMPLETE)
    live: defaultdict[Key, Histogram] = defaultdict(Histogram)
    for r in await q.rows(
        f"SELECT {keys}, error_class, {bucket_of('d')} AS b, COUNT(*) AS runs, "
        "SUM(d) AS sum_ms, SUM(round(d)) AS rounded_ms, MAX(d) AS max_ms, "
        f"SUM({FAILURES}) AS failures, COUNT(*) FILTER (WHERE attempts > 1) AS retried, "
        f"MAX(COALESCE(timeout_seconds, {timeout})) AS timeout, "
        "MAX(retry_limit) AS retry_limit, "
        f"COUNT(*) FILTER (WHERE status = {complete} AND attempts > 1) AS retried_ok, "
        f"COUNT(*) FILTER (WHERE status = {complete} AND attempts > 1 "
        "AND attempts >= retry_limit) AS last_ok, "
        f"COUNT(*) FILTER (WHERE status = {state(StepState.ERROR)} AND next_attempt_at IS NULL "
        "AND retryable "
        "AND attempts >= retry_limit) AS exhausted "
        f"FROM ({live_runs(q, scope, split)}) AS runs GROUP BY {keys}, error_class, b"
    ):
        key = tuple(r[k] for k in KEYS)
        figures.add(key, r)
        figures.fail(key, r["error_class"], int(r["failures"] or 0))
        live[key].add(int(r["b"]), int(r["runs"]), float(r["rounded_ms"]))
    candidates = {key: live[key] for key in figures.candidates()}
    p95s = await _p95s(conn, memo, split, candidates) if candidates else {}
    return figures.stats(p95s), figures.patterns()


async def _rolled(
    conn: Conn, memo: RolledBlockCache, scope: BottleneckScope, split: Split, figures: Figures
) -> None:
    for r in await memo.rows(conn, "step sums", split.blocks, _step_sums):
        if scope.holds(*_key(r)[:3]):
            # Timeouts are stored as set (NULL = the server default, which may change): the
            # default applies at read time, as it does for live runs.
            default = figures.default_timeout if int(r["untimed"] or 0) else 0.0
            figures.add(_key(r), {**r, "timeout": max(float(r["timeout_max"] or 0), default)})
    for r in await memo.rows(conn, "step errors", split.blocks, _step_errors):
        if scope.holds(*_key(r)[:3]):
            figures.fail(_key(r), r["error_class"], int(r["failed"]))


def _step_sums(q: Query, where: str) -> str:
    return (
        "SELECT namespace, name, version, step_name, SUM(runs) AS runs, SUM(sum_ms) AS sum_ms, "
        "MAX(max_ms) AS max_ms, SUM(retried) AS retried, MAX(timeout_max) AS timeout_max, "
        "SUM(untimed) AS untimed, MAX(retry_limit) AS retry_limit, "
        "SUM(retried_ok) AS retried_ok, SUM(last_ok) AS last_ok, SUM(exhausted) AS exhausted "
        f"FROM tasker_analytics_step_slots WHERE {where} "
        "GROUP BY namespace, name, version, step_name"
    )


def _step_errors(q: Query, where: str) -> str:
    return (
        "SELECT namespace, name, version, step_name, e.key AS error_class, "
        "SUM(CAST(e.value AS INTEGER)) AS failed "
        f"FROM tasker_analytics_step_slots, {json_entries(q, 'errors')} AS e "
        f"WHERE {where} AND errors <> '{{}}' "
        "GROUP BY namespace, name, version, step_name, e.key"
    )


def _key(row: dict[str, Any]) -> Key:
    return (row["namespace"], row["name"], row["version"], row["step_name"])


async def _p95s(
    conn: Conn, memo: RolledBlockCache, split: Split, live: dict[Key, Histogram]
) -> dict[Key, int | None]:
    """Nearest-rank p95 (ms) of the runs of these handler steps: their live histograms merged
    with their rolled ones.

    A block's histograms are kept per step as reports ask for them: only the few steps near
    their timeouts need a percentile, and reading every step's histograms for a day's hours
    cost ten times more than reading theirs."""

    async def empty(_block: Block) -> dict[Key, Histogram]:
        return {}

    blocks = split.blocks
    for block, kept in zip(blocks, await memo.each("step durations", blocks, empty), strict=True):
        missing = [key for key in live if key not in kept]
        if missing:
            kept.update(await _histograms(conn, block, missing))
        for key, histogram in live.items():
            histogram.merge(kept[key])
    return {key: h.percentile(0.95) for key, h in live.items()}


async def _histograms(conn: Conn, block: Block, keys: list[Key]) -> dict[Key, Histogram]:
    """These steps' duration histograms over the block (empty for a step with no runs)."""
    q = Query(conn)
    wanted = ", ".join(f"({', '.join(q(v) for v in key)})" for key in keys)
    texts: dict[Key, list[str]] = {key: [] for key in keys}
    for r in await q.rows(
        "SELECT namespace, name, version, step_name, histogram "
        f"FROM tasker_analytics_step_slots WHERE {rolled_sql(q, [block])} "
        f"AND (namespace, name, version, step_name) IN ({wanted})"
    ):
        texts[_key(r)].append(r["histogram"])
    merged = {key: Histogram() for key in keys}
    for key, stored in texts.items():
        merged[key].add_stored(stored)
    return merged
