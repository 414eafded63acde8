"""The built-in HTTP step handler: call a service from a workflow without writing Python.

A step with `handler_config: {type: http, url: ...}` runs `HttpStepHandler`. Options:

- `url` (required), `method` (default POST), `headers` (mapping), `timeout` (seconds; default
  the step's `timeout_seconds`, else 30);
- `json` (sent as JSON) or `body` (a string is sent as is, anything else as JSON). With neither,
  POST/PUT/PATCH send `{"task_id", "step", "context", "inputs", "parent_results"}` and other
  methods send no body.

Templating: `{task_id}`, `{step}`, `{context.a.b}`, `{inputs.x}` and `{parent_results.s.k}`
are replaced in the URL (URL-quoted), in header values and in string leaves of `json`/`body`.
A body string that is exactly one placeholder takes the value itself, keeping its JSON type.
A missing key fails the step permanently. Nothing else is evaluated.

Outcomes: 2xx returns the JSON response (or `{"status", "body"}` when it is not JSON); 429 and 503
retry, honouring `Retry-After` (seconds or HTTP-date); 5xx and network errors or timeouts retry;
any other status fails permanently with code `HTTP_<status>`. Redirects are not followed.

`TASKER_HTTP_ALLOWED_HOSTS` (comma-separated host names, `*.example.com` for subdomains; unset or
empty allows every host) limits where steps may call; it is read on every call.
"""

import os
import re
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx

from server.domain.errors import PermanentError, RetryableError
from server.handlers.base import StepContext, StepHandler

ALLOWED_HOSTS_ENV = "TASKER_HTTP_ALLOWED_HOSTS"
DEFAULT_TIMEOUT = 30.0
_BODYLESS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})
_PLACEHOLDER = re.compile(r"\{(task_id|step|(?:context|inputs|parent_results)(?:\.[\w-]+)+)\}")


class HttpStepHandler(StepHandler):
    """Runs one HTTP request per attempt, as configured by the step's `handler_config`."""

    def __init__(
        self,
        allowed_hosts: Collection[str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """`allowed_hosts` overrides `TASKER_HTTP_ALLOWED_HOSTS` (empty allows every host).

        `transport` replaces the network (e.g. an `httpx.MockTransport` in tests; the test
        helper's `stub_http` sets it); None sends real requests."""
        self._allowed_hosts = allowed_hosts
        self.transport = transport

    async def process(self, step: StepContext) -> Any:
        """Send the request and map the response onto results, a retry or a failure."""
        config = step.config
        url = config.get("url")
        if not isinstance(url, str) or not url:
            raise PermanentError("http step needs handler_config.url", code="HTTP_CONFIG")
        url = _render_text(url, step, quote_values=True)
        method = str(config.get("method", "POST")).upper()
        self._check_host(url)
        headers = {str(k): _render_text(str(v), step) for k, v in _mapping(config, "headers")}
        request = {"headers": headers, **_body(config, step, method)}
        timeout = float(config.get("timeout") or step.timeout_seconds or DEFAULT_TIMEOUT)
        try:
            async with httpx.AsyncClient(
                timeout=timeout, follow_redirects=False, transport=self.transport
            ) as client:
                response = await client.request(method, url, **request)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise PermanentError(f"bad url '{url}': {exc}", code="HTTP_CONFIG") from exc
        except httpx.TimeoutException as exc:
            raise RetryableError(f"{method} {url} timed out after {timeout:g}s") from exc
        except httpx.TransportError as exc:
            raise RetryableError(f"{method} {url} failed: {exc!r}") from exc
        return _outcome(method, url, response)

    def _check_host(self, url: str) -> None:
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise PermanentError(f"bad url '{url}': {exc}", code="HTTP_CONFIG") from exc
        if parsed.scheme not in {"http", "https"} or not parsed.host:
            raise PermanentError(f"url '{url}' is not an http(s) url", code="HTTP_CONFIG")
        allowed = self._allowed_hosts
        if allowed is None:
            allowed = [h.strip() for h in os.environ.get(ALLOWED_HOSTS_ENV, "").split(",")]
        patterns = [h.lower() for h in allowed if h]
        host = parsed.host.lower()
        if patterns and not any(_host_matches(host, p) for p in patterns):
            raise PermanentError(f"host '{host}' is not allowed", code="HTTP_HOST_NOT_ALLOWED")


def _body(config: Mapping[str, Any], step: StepContext, method: str) -> dict[str, Any]:
    """The `json=` or `content=` argument for the request, if any."""
    if "json" in config:
        return {"json": _render(config["json"], step)}
    if isinstance(config.get("body"), str):
        return {"content": _render_text(config["body"], step)}
    if "body" in config:
        return {"json": _render(config["body"], step)}
    if method in _BODYLESS:
        return {}
    return {
        "json": {
            "task_id": str(step.task_id),
            "step": step.name,
            "context": step.context,
            "inputs": step.inputs,
            "parent_results": dict(step.parent_results),
        }
    }


def _outcome(method: str, url: str, response: httpx.Response) -> Any:
    status = response.status_code
    if 200 <= status < 300:
        try:
            return response.json()
        except ValueError:
            return {"status": status, "body": response.text}
    summary = f"{method} {url} returned {status}: {response.text[:200]}"
    if status in {429, 503}:
        raise RetryableError(summary, retry_after=_retry_after(response))
    if status >= 500:
        raise RetryableError(summary)
    raise PermanentError(summary, code=f"HTTP_{status}")


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait from a `Retry-After` header, given as seconds or as an HTTP-date."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a zone-less parse means the same
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _host_matches(host: str, pattern: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


def _mapping(config: Mapping[str, Any], key: str) -> list[tuple[Any, Any]]:
    value = config.get(key) or {}
    if not isinstance(value, Mapping):
        raise PermanentError(f"handler_config.{key} must be a mapping", code="HTTP_CONFIG")
    return list(value.items())


def _lookup(expression: str, step: StepContext) -> Any:
    """The value of one placeholder such as `context.customer.id`."""
    if expression == "task_id":
        return str(step.task_id)
    if expression == "step":
        return step.name
    root, *keys = expression.split(".")
    value: Any = {"context": step.context, "inputs": step.inputs,
                  "parent_results": step.parent_results}[root]  # fmt: skip
    for key in keys:
        if not isinstance(value, Mapping) or key not in value:
            raise PermanentError(f"template value '{{{expression}}}' is missing", "HTTP_TEMPLATE")
        value = value[key]
    return value


def _render_text(text: str, step: StepContext, *, quote_values: bool = False) -> str:
    def substitute(match: re.Match[str]) -> str:
        value = str(_lookup(match.group(1), step))
        return quote(value, safe="") if quote_values else value

    return _PLACEHOLDER.sub(substitute, text)


def _render(value: Any, step: StepContext) -> Any:
    """`value` with placeholders filled in every string leaf."""
    if isinstance(value, str):
        whole = _PLACEHOLDER.fullmatch(value)
        return _lookup(whole.group(1), step) if whole else _render_text(value, step)
    if isinstance(value, Mapping):
        return {k: _render(v, step) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, step) for v in value]
    return value
