"""`tasker worker`'s own Prometheus endpoint.

Step completions, failures, retries and durations are counted in the worker processes, where
steps run, so each worker host is scraped itself (docs/observability.md): the server's
`/tasker/metrics` only sees them when both share one host and one `PROMETHEUS_MULTIPROC_DIR`.
With several processes (`--processes N`) they write their values to a multiprocess directory
(a private one unless `PROMETHEUS_MULTIPROC_DIR` is set) and the supervisor serves their sum.
Gauges read from the database (tasks by status, ready steps, live workers) stay on the server:
they describe the whole deployment, not this host.
"""

import logging
import os
import shutil
import tempfile
from collections.abc import Callable

from prometheus_client import start_http_server

from server.infra.metrics import counters_registry

log = logging.getLogger(__name__)


def serve_metrics(port: int, host: str) -> Callable[[], None]:
    """Serve `/metrics` on `host:port` from a daemon thread (port 0: not at all); returns a
    function that stops it. A port already taken is logged, not fatal: running steps matters
    more than being scraped."""
    if not port:
        return lambda: None
    try:
        server, thread = start_http_server(port, addr=host, registry=counters_registry())
    except OSError as exc:
        log.warning("worker metrics not served: %s:%d: %s", host, port, exc)
        return lambda: None
    log.info("worker metrics on http://%s:%d/metrics", host, port)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop


def share_across_processes() -> Callable[[], None]:
    """Make the worker processes about to be spawned count into one directory, so that the
    supervisor can serve their sum; returns the clean-up. Call before starting them."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return lambda: None  # the operator's directory, the operator's to clean
    directory = tempfile.mkdtemp(prefix="tasker-worker-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory

    def clean() -> None:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        shutil.rmtree(directory, ignore_errors=True)

    return clean
