"""How many tasks match a filter, remembered briefly when the answer is large.

Counting a million matching tasks costs more than reading the page itself, and an exact figure
that large is out of date by the next request anyway. So counts above `LARGE_COUNT`
are reused by this process for `COUNTS.ttl` seconds (then refreshed once in the background,
see `server.infra.memo`); smaller counts are always exact.
"""

from server.infra.memo import RefreshingMemo

LARGE_COUNT = 10_000

FilterKey = tuple[str | None, ...]
"""namespace, name, version, status: what a count is remembered by."""


def _large(total: int) -> bool:
    return total > LARGE_COUNT


COUNTS: RefreshingMemo[int] = RefreshingMemo(ttl=5.0, stale_limit=30.0, keep=_large)
