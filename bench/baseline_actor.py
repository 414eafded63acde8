"""The baseline: a plain Dramatiq no-op actor on the same Redis, counting into Redis."""

import os

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

URL = os.environ["BENCH_REDIS_URL"]
broker = RedisBroker(url=URL, namespace="bench-baseline")
dramatiq.set_broker(broker)
counter = redis.Redis.from_url(URL)


@dramatiq.actor(max_retries=0, queue_name="baseline")
def noop(i: int) -> None:
    counter.incr("bench:baseline:done")
