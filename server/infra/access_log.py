"""A sampled access log: every refused or failed request, and a share of the successful ones.

A line per request cost a busy server more than some of its endpoints did (uvicorn formats
it, our filters run, the handler writes it): at thousands of reads a second the log is a
stream nobody reads line by line. Requests answered with a status of 400 or more are always
logged, so errors and refusals stay traceable by request id; the others with probability
`TASKER_ACCESS_LOG_SAMPLE` (1: every line, 0: none). Metrics count every request anyway.
"""

import logging
import random

ALWAYS_FROM_STATUS = 400


class AccessSampler(logging.Filter):
    """Keeps uvicorn access records of failures and a random share of the rest."""

    def __init__(self, rate: float = 1.0) -> None:
        super().__init__()
        self.rate = rate

    def filter(self, record: logging.LogRecord) -> bool:
        if self.rate >= 1.0:
            return True
        args = record.args
        # uvicorn.access logs (client, method, path with query, http version, status).
        status = args[4] if isinstance(args, tuple) and len(args) == 5 else None
        if not isinstance(status, int) or status >= ALWAYS_FROM_STATUS:
            return True
        return random.random() < self.rate
