"""An installed Tasker serves every page with no internet: the browser assets ship in the package.

The slow tests build the sdist from a clean copy of the source tree (as a fresh clone: the
build fetches the assets from the npm registry), then the wheel from that sdist with the
registry unreachable (so the sdist must carry the assets), install the wheel into
a fresh venv, run `tasker serve` from it in an empty directory, and check that GraphiQL, the task
diagram, Swagger UI and the console reference only this server and that every script and style
sheet they name answers 200. With Chromium installed, GraphiQL and the diagram are also loaded
in a headless browser that can reach nothing but loopback.

The fast tests drive `server.assets.fetch` against a small local registry.
"""

import base64
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import tarfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from server import assets
from server.assets import AssetsError, Package, asset_url, fetch
from tests.api.rest_support import PAYMENT
from tests.people import browser

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
# XML namespace names in inline SVG: identifiers that no browser ever fetches.
XML_NAMESPACES = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}
ABSOLUTE_URL = re.compile(r"""\b(?:https?|wss?)://[^\s"'<>)`\\]+""")
SCRIPT_OR_STYLE = re.compile(r"""<(?:script|link)\b[^>]*?\b(?:src|href)="([^"]+)\"""")
CONSOLE_MERMAID = re.compile(r'window\.TASKER_MERMAID_URL = "([^"]*)"')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """This environment minus anything that could point the build or the server elsewhere."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("TASKER_")
        and key not in {"PYTHONPATH", "VIRTUAL_ENV"}
        and key.lower() != "npm_config_registry"
    }
    return {**env, **extra}


def run(*command: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


# --- the installed wheel ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sdist from a copy of the tree, then the wheel from the sdist with no npm registry."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    listed = run("git", "ls-files", "-z", "-co", "--exclude-standard", cwd=ROOT)
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    # Like a fresh clone: no vendored files, so the sdist build fetches them from npm.
    assert not (source / "server" / "static" / "vendor").exists()
    dist = work / "dist"
    run(sys.executable, "-m", "build", "--sdist", "--outdir", dist, source)
    (sdist,) = dist.glob("tasker-*.tar.gz")
    with tarfile.open(sdist) as tar:
        tar.extractall(work / "unpacked", filter="data")
    (unpacked,) = (work / "unpacked").iterdir()
    # A dead registry: whatever the wheel needs from npm must be in the sdist.
    offline = clean_env(npm_config_registry=f"http://127.0.0.1:{free_port()}")
    run(sys.executable, "-m", "build", "--wheel", "--outdir", dist, unpacked, env=offline)
    (built,) = dist.glob("tasker-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding only the wheel; its dependencies come from this venv's packages.

    A plain path in a .pth file adds this venv's site-packages to sys.path without running
    the .pth files there, so the project's own editable install (a .pth finder) stays unseen.
    """
    venv = tmp_path_factory.mktemp("venv") / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", wheel)
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip())
    (site / "tasker_test_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv


@pytest.fixture(scope="module")
def served(venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`tasker serve` from the fresh venv, in an empty working directory."""
    cwd = tmp_path_factory.mktemp("run")
    port = free_port()
    env = clean_env(TASKER_DATABASE_URL=f"sqlite://{cwd / 'tasker.db'}")
    process = subprocess.Popen(
        [venv / "bin" / "tasker", "serve", "--port", str(port), "--examples"],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/tasker/health/live").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, "tasker serve exited"
            assert time.monotonic() < deadline, "tasker serve did not start"
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(15)


@pytest.fixture(scope="module")
def pages(served: str) -> dict[str, str]:
    """The four browser pages, by name, as absolute URLs."""
    body = {"name": "process_payment", "namespace": "payments", "version": "2.1.0"}
    created = httpx.post(f"{served}/tasker/tasks", json={**body, "context": PAYMENT})
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]
    return {
        "graphiql": f"{served}/tasker/graphql",
        "diagram": f"{served}/tasker/tasks/{task_id}/task_diagrams?format=html",
        "swagger": f"{served}/tasker/api-docs",
        "console": f"{served}/tasker/ui",
    }


@pytest.mark.slow
def test_the_server_runs_from_the_wheel_with_its_assets(venv: Path, tmp_path: Path) -> None:
    where = run(
        venv / "bin" / "python",
        "-c",
        "import server.assets as a; print(a.__file__); print(a.missing())",
        cwd=tmp_path,
    ).split()
    assert where[0].startswith(str(venv)), where  # the wheel's copy, not the source tree
    assert where[1] == "[]"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["graphiql", "diagram", "swagger", "console"])
def test_every_page_references_only_this_server(pages: dict[str, str], name: str) -> None:
    url = pages[name]
    page = httpx.get(url, headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    foreign = [
        found
        for found in ABSOLUTE_URL.findall(html)
        if found not in XML_NAMESPACES and urlsplit(found).hostname not in LOOPBACK
    ]
    assert foreign == [], f"{name} references other origins"
    referenced = SCRIPT_OR_STYLE.findall(html) + [u for u in CONSOLE_MERMAID.findall(html) if u]
    assert referenced, f"{name} names no scripts"
    if name in {"graphiql", "diagram", "console"}:
        assert any("/tasker/static/vendor/" in ref for ref in referenced), referenced
    for ref in referenced:
        if ref.startswith("data:"):
            continue
        absolute = urljoin(url, ref)
        assert urlsplit(absolute).hostname in LOOPBACK, absolute
        assert httpx.get(absolute).status_code == 200, absolute


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(not Path(browser.CHROMIUM).exists(), reason="chromium is not installed")
async def test_graphiql_and_the_diagram_work_with_only_loopback_reachable(
    pages: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    monkeypatch.setattr(
        browser,
        "FLAGS",
        [
            *browser.FLAGS,
            # Host names resolve to nothing, and IP literals go to a proxy that is not there;
            # Chromium never proxies loopback.
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            f"--proxy-server=http://{dead}",
        ],
    )
    requested: list[str] = []
    async with browser.open_page() as page:

        async def note(params: dict[str, object]) -> None:
            requested.append(str(params["request"]["url"]))  # type: ignore[index]

        page.listeners["Network.requestWillBeSent"] = note
        await page.send("Network.enable")

        await page.goto(pages["graphiql"])
        await page.wait_for("document.querySelector('.graphiql-execute-button')", timeout=30)
        await page.goto(pages["diagram"])
        await page.wait_for("document.querySelector('pre.mermaid svg')", timeout=30)
        assert page.errors == []
    fetched = [u for u in requested if not u.startswith("data:")]
    assert fetched and all(urlsplit(u).hostname in LOOPBACK for u in fetched), fetched


# --- fetching from a registry ----------------------------------------------------------------


def npm_tarball(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue())


def sri(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


class Registry:
    """A loopback npm registry serving fixed tarballs by path, counting requests."""

    def __init__(self, tarballs: dict[str, bytes]) -> None:
        self.tarballs = tarballs
        self.requests: list[str] = []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                registry.requests.append(self.path)
                body = registry.tarballs.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def registry() -> Iterator[Registry]:
    tarball = npm_tarball({"dist/widget.min.js": b"window.widget = 1;"})
    server = Registry({"/@acme/widget/-/widget-1.0.0.tgz": tarball})
    yield server
    server.close()


def widget(integrity: str, version: str = "1.0.0") -> Package:
    return Package("@acme/widget", version, integrity, (("dist/widget.min.js", "widget.min.js"),))


def test_a_verified_tarball_is_vendored_once(registry: Registry, tmp_path: Path) -> None:
    package = widget(sri(registry.tarballs["/@acme/widget/-/widget-1.0.0.tgz"]))
    fetched = fetch(vendor=tmp_path, registry=registry.url, packages=(package,))
    assert fetched == ["widget.min.js"]
    assert (tmp_path / "widget.min.js").read_bytes() == b"window.widget = 1;"
    assert json.loads((tmp_path / "versions.json").read_text()) == {
        "@acme/widget@1.0.0": package.integrity
    }
    # Current files are not downloaded again (a wheel built from the sdist needs no network).
    assert fetch(vendor=tmp_path, registry=registry.url, packages=(package,)) == []
    assert len(registry.requests) == 1


def test_a_new_pinned_version_replaces_the_stale_copy(registry: Registry, tmp_path: Path) -> None:
    old = widget(sri(registry.tarballs["/@acme/widget/-/widget-1.0.0.tgz"]))
    fetch(vendor=tmp_path, registry=registry.url, packages=(old,))
    tarball = npm_tarball({"dist/widget.min.js": b"window.widget = 2;"})
    registry.tarballs["/@acme/widget/-/widget-2.0.0.tgz"] = tarball
    new = widget(sri(tarball), version="2.0.0")
    assert fetch(vendor=tmp_path, registry=registry.url, packages=(new,)) == ["widget.min.js"]
    assert (tmp_path / "widget.min.js").read_bytes() == b"window.widget = 2;"


def test_a_tampered_tarball_fails_the_build(registry: Registry, tmp_path: Path) -> None:
    package = widget(sri(b"something else"))
    with pytest.raises(AssetsError, match="integrity"):
        fetch(vendor=tmp_path, registry=registry.url, packages=(package,))
    assert not (tmp_path / "widget.min.js").exists()


def test_an_unreachable_registry_fails_the_build_naming_the_url(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(AssetsError, match=re.escape(f"{dead}/@acme/widget/-/widget-1.0.0.tgz")):
        fetch(vendor=tmp_path, registry=dead, packages=(widget(sri(b"x")),))


def test_pages_never_fall_back_to_a_cdn(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(assets, "VENDOR", tmp_path)  # nothing vendored here
    assert asset_url("mermaid.min.js") == "/tasker/static/vendor/mermaid.min.js"
