"""Keeping the garbage collector's full passes off the request path.

A started server holds a few hundred thousand long-lived objects (the GraphQL schema, the ORM
metadata, the handler catalogue, imported modules). CPython's oldest-generation collection
walks all of them every time it runs; under load that was a 50-140 ms pause every second or
so, which set the p99 of every endpoint (bench/rest_bench.py). Freezing what is alive once
start-up is done moves those objects out of the collector's sight; what requests allocate is
collected as before. `TASKER_FREEZE_HEAP=false` turns it off.
"""

import gc


def freeze_startup_objects() -> None:
    """Collect once, then move everything still alive into the permanent generation, which
    the collector never walks."""
    gc.collect()
    gc.freeze()
