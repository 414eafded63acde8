"""Keeping the garbage collector's full passes off the request path.

A started server holds a few hundred thousand long-lived objects (the GraphQL schema, the ORM
metadata, the handler catalogue, imported modules). CPython's oldest-generation collection
walks all of them every time it runs; under load that was a 50-140 ms pause every second or
so, which set the p99 of every endpoint (bench/rest_bench.py). Freezing the heap once start-up
is done moves those objects out of the collector's sight; what requests allocate is collected
as before.
"""

import gc


def settle() -> None:
    """Collect once, then freeze everything alive into the permanent generation."""
    gc.collect()
    gc.freeze()
