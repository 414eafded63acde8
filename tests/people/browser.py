"""A small headless-Chromium driver over the Chrome DevTools Protocol (the `websockets` package).

Enough to test the console as a person uses it: open a page, wait for something to appear,
click, type, read text, take screenshots, and collect uncaught JavaScript errors. Debian's
`chromium` is driven directly; nothing is downloaded.
"""

import asyncio
import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-port=0",
    "--window-size=1280,900",
]


class BrowserError(AssertionError):
    """A page misbehaved (a JavaScript exception, or a wait that timed out)."""


class Page:
    """One tab, spoken to over the browser's single (flattened) DevTools connection."""

    def __init__(self, ws: ClientConnection, session: str, counter: "itertools.count[int]"):
        self.ws = ws
        self.session = session
        self.counter = counter
        self.waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.errors: list[str] = []
        self.console: list[str] = []
        self.listeners: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {}
        self._tasks: set[asyncio.Future[None]] = set()

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self.counter)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[ident] = future
        message = {"id": ident, "method": method, "params": params, "sessionId": self.session}
        await self.ws.send(json.dumps(message))
        reply = await asyncio.wait_for(future, 30)
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error']}")
        return dict(reply.get("result", {}))

    def on_event(self, message: dict[str, Any]) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            self.errors.append(str(text))
        elif method == "Runtime.consoleAPICalled":
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            self.console.append(f"{params['type']}: {args}")
        elif method == "Page.javascriptDialogOpening":
            self._spawn(self.send("Page.handleJavaScriptDialog", accept=True))
        if method in self.listeners:
            self._spawn(self.listeners[method](params))

    def _spawn(self, work: Awaitable[Any]) -> None:
        task: asyncio.Future[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def intercept(self, url_pattern: str, status: int, body: Any) -> None:
        """Answer every request matching `url_pattern` with `status` and JSON `body`."""
        data = base64.b64encode(json.dumps(body).encode()).decode()

        async def fulfil(params: dict[str, Any]) -> None:
            await self.send(
                "Fetch.fulfillRequest",
                requestId=params["requestId"],
                responseCode=status,
                responseHeaders=[{"name": "Content-Type", "value": "application/json"}],
                body=data,
            )

        self.listeners["Fetch.requestPaused"] = fulfil
        await self.send("Fetch.enable", patterns=[{"urlPattern": url_pattern}])

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", url=url)
        await self.wait_for("document.readyState === 'complete'")

    async def eval(self, expression: str) -> Any:
        reply = await self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in reply:
            raise BrowserError(f"{expression}: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 15.0) -> Any:
        """Poll until `expression` is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        # DOM nodes do not travel by value: a found element counts as true.
        probe = f"(() => {{ const v = ({expression}); return v instanceof Node ? true : v; }})()"
        while True:
            with contextlib.suppress(BrowserError):
                value = await self.eval(probe)
                if value:
                    return value
            if time.monotonic() > deadline:
                text = await self.text("body")
                raise BrowserError(f"timed out waiting for {expression!r}; page says: {text[:800]}")
            await asyncio.sleep(0.1)

    async def text(self, selector: str) -> str:
        return str(
            await self.eval(f"document.querySelector({json.dumps(selector)})?.innerText ?? ''")
        )

    async def click(self, selector: str) -> None:
        await self.wait_for(f"!!document.querySelector({json.dumps(selector)})")
        await self.eval(f"document.querySelector({json.dumps(selector)}).click()")

    async def fill(self, selector: str, value: str) -> None:
        await self.wait_for(f"!!document.querySelector({json.dumps(selector)})")
        await self.eval(
            f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
            f" el.value = {json.dumps(value)};"
            " el.dispatchEvent(new Event('input', {bubbles: true})); })()"
        )

    async def screenshot(self, path: Path) -> Path:
        """A full-page PNG."""
        metrics = await self.send("Page.getLayoutMetrics")
        size = metrics["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": 1280, "height": min(size["height"], 4000), "scale": 1}
        shot = await self.send(
            "Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


@contextlib.asynccontextmanager
async def open_page() -> AsyncIterator[Page]:
    """Start Chromium, open one tab, and close everything afterwards."""
    # Chromium helpers may still be writing the profile as it exits: ignore leftovers.
    with tempfile.TemporaryDirectory(
        prefix="tasker-chromium-", ignore_cleanup_errors=True
    ) as profile:
        process = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + 30
            while not (port_file.exists() and len(port_file.read_text().split()) == 2):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise BrowserError("chromium did not start")
                await asyncio.sleep(0.1)
            port, path = port_file.read_text().split()
            async with connect(f"ws://127.0.0.1:{port}{path}", max_size=None) as ws:
                yield await _attach(ws)
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def _attach(ws: ClientConnection) -> Page:
    counter = itertools.count(1)
    pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
    pages: dict[str, Page] = {}

    async def reader() -> None:
        async for raw in ws:
            message = json.loads(raw)
            if "id" in message:
                target = (
                    pages.get(message.get("sessionId", "")) if message.get("sessionId") else None
                )
                waiting = target.waiting if target else pending
                future = waiting.pop(message["id"], None)
                if future is not None and not future.done():
                    future.set_result(message)
            elif message.get("sessionId") in pages:
                pages[message["sessionId"]].on_event(message)

    task = asyncio.ensure_future(reader())
    ws.reader_task = task  # type: ignore[attr-defined]  # keeps a reference while connected

    async def browser(method: str, **params: Any) -> dict[str, Any]:
        ident = next(counter)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        pending[ident] = future
        await ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        return dict((await asyncio.wait_for(future, 30)).get("result", {}))

    target = await browser("Target.createTarget", url="about:blank")
    attached = await browser("Target.attachToTarget", targetId=target["targetId"], flatten=True)
    page = Page(ws, attached["sessionId"], counter)
    pages[page.session] = page
    for domain in ("Page.enable", "Runtime.enable"):
        await page.send(domain)
    await page.send(
        "Emulation.setDeviceMetricsOverride",
        width=1280,
        height=900,
        deviceScaleFactor=1,
        mobile=False,
    )
    return page
