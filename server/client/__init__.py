"""A Python client for Tasker's REST API and GraphQL endpoint, sync and async.

Standalone on purpose (httpx only, no server imports) so it can be split into its own package::

    from server.client import TaskerClient, NotFoundError

    with TaskerClient("http://127.0.0.1:8000", token=os.environ.get("TASKER_TOKEN")) as tasker:
        task = tasker.create_task("payments", "process_payment", {"payment_id": 1})
        done = tasker.wait_for_task(task["id"], timeout=30)
"""

from server.client.aio import AsyncTaskerClient
from server.client.errors import (
    AuthenticationError,
    AuthorizationError,
    BadRequestError,
    ConflictError,
    GraphQLError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    ServerError,
    ServiceUnavailableError,
    TaskerError,
    TransportError,
    ValidationError,
)
from server.client.sync import TaskerClient
from server.client.transport import RetryPolicy
from server.client.types import TERMINAL, EventFrame, Step, Task

__all__ = [
    "TERMINAL",
    "AsyncTaskerClient",
    "AuthenticationError",
    "AuthorizationError",
    "BadRequestError",
    "ConflictError",
    "EventFrame",
    "GraphQLError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RateLimitedError",
    "RetryPolicy",
    "ServerError",
    "ServiceUnavailableError",
    "Step",
    "Task",
    "TaskerClient",
    "TaskerError",
    "TransportError",
    "ValidationError",
]
