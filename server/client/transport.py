"""HTTP transport shared by the sync and async clients: requests, retries, error mapping.

An endpoint is described once as a `Call` (method, path, body, whether repeating it is safe);
the two transports differ only in how they wait and send. Idempotent calls are retried on 429
and 503 (and on connection failures) with exponential backoff, honouring `Retry-After`; other
calls are sent once, because repeating them could create or change something twice.
"""

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Generic, TypeVar, cast

import httpx

from server.client.errors import TaskerError, TransportError, error_for, graphql_error

DEFAULT_URL = "http://127.0.0.1:8000"
RETRY_STATUSES = frozenset({429, 503})

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Call(Generic[R]):
    """One API request, independent of how it is sent; `R` is what sending it returns."""

    method: str
    path: str
    """Relative to the `/tasker` mount, e.g. `/tasks`."""
    params: Mapping[str, Any] | None = None
    json: Any = None
    headers: Mapping[str, str] | None = None
    idempotent: bool = True
    text: bool = False
    """Return the body as text (e.g. Prometheus metrics) instead of parsed JSON."""
    unwrap: str | None = None
    """Return only this key of the JSON body (e.g. `namespaces`)."""
    decode: Callable[[Any], R] | None = None
    """Turn the body into the value returned (e.g. GraphQL's `data`, its `errors` raised)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to wait before repeating an idempotent call."""

    attempts: int = 4
    """Total tries, the first included."""
    base_seconds: float = 0.5
    max_seconds: float = 30.0
    jitter: float = 0.1
    statuses: frozenset[int] = field(default_factory=lambda: RETRY_STATUSES)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed try number `attempt` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_seconds)
        backoff = min(self.base_seconds * 2.0 ** (attempt - 1), self.max_seconds)
        return backoff * (1 + random.uniform(-self.jitter, self.jitter))


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds: either delta-seconds or an HTTP-date; None if unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def base_url_of(url: str) -> str:
    """The `/tasker` root for a server URL given with or without the mount path."""
    url = url.rstrip("/")
    return url if url.endswith("/tasker") else f"{url}/tasker"


def default_headers(token: str | None) -> dict[str, str]:
    headers = {"Accept": "application/json", "User-Agent": "tasker-python-client"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def raise_for_status(response: httpx.Response) -> None:
    """The typed error a non-2xx (read) response's envelope describes; nothing for 2xx."""
    if response.status_code < 400:
        return
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    if isinstance(body, dict) and "error" not in body and isinstance(body.get("errors"), list):
        raise graphql_error(body["errors"], response.status_code)  # GraphQL's own shape
    raise error_for(response.status_code, body, response.headers.get("x-request-id"))


def result_of(call: Call[R], response: httpx.Response) -> R:
    """The call's value from a response, or the typed error its envelope describes."""
    raise_for_status(response)
    data: Any
    if call.text:
        data = response.text
    elif response.status_code == 204 or not response.content:
        data = None
    else:
        data = response.json()
        data = data[call.unwrap] if call.unwrap else data
    return call.decode(data) if call.decode else cast(R, data)


def _retry_delay(
    call: Call[Any], policy: RetryPolicy, attempt: int, response: httpx.Response | None
) -> float | None:
    """Seconds to wait before trying again, or None to stop here."""
    if not call.idempotent or attempt >= policy.attempts:
        return None
    if response is None:  # a connection failure: nothing reached the server's handlers
        return policy.delay(attempt, None)
    if response.status_code not in policy.statuses:
        return None
    return policy.delay(attempt, retry_after_seconds(response.headers.get("retry-after")))


def _request_args(call: Call[Any]) -> dict[str, Any]:
    params = {k: _param(v) for k, v in (call.params or {}).items() if v is not None}
    args: dict[str, Any] = {"params": params, "headers": dict(call.headers or {})}
    if call.json is not None:
        args["json"] = call.json
    return args


def _param(value: Any) -> Any:
    return str(value).lower() if isinstance(value, bool) else value


class SyncTransport:
    """Sends calls with `httpx.Client`, sleeping between retries."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        timeout: float,
        retry: RetryPolicy,
        http: httpx.Client | None = None,
    ) -> None:
        self.retry = retry
        self.http = http or httpx.Client(timeout=timeout)
        self.http.base_url = httpx.URL(base_url_of(url))
        self.http.headers.update(default_headers(token))

    def send(self, call: Call[R]) -> R:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self.http.request(call.method, call.path, **_request_args(call))
            except httpx.TransportError as exc:
                wait = _retry_delay(call, self.retry, attempt, None)
                if wait is None:
                    raise TransportError(f"cannot reach {self.http.base_url}: {exc}") from exc
            else:
                wait = _retry_delay(call, self.retry, attempt, response)
                if wait is None:
                    return result_of(call, response)
            time.sleep(wait)

    def close(self) -> None:
        self.http.close()


class AsyncTransport:
    """Sends calls with `httpx.AsyncClient`, awaiting between retries."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        timeout: float,
        retry: RetryPolicy,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.retry = retry
        self.http = http or httpx.AsyncClient(timeout=timeout)
        self.http.base_url = httpx.URL(base_url_of(url))
        self.http.headers.update(default_headers(token))

    async def send(self, call: Call[R]) -> R:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self.http.request(call.method, call.path, **_request_args(call))
            except httpx.TransportError as exc:
                wait = _retry_delay(call, self.retry, attempt, None)
                if wait is None:
                    raise TransportError(f"cannot reach {self.http.base_url}: {exc}") from exc
            else:
                wait = _retry_delay(call, self.retry, attempt, response)
                if wait is None:
                    return result_of(call, response)
            await asyncio.sleep(wait)

    async def close(self) -> None:
        await self.http.aclose()


__all__ = ["AsyncTransport", "Call", "RetryPolicy", "SyncTransport", "TaskerError"]
