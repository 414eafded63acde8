"""Third-party browser assets (React, GraphiQL, js-cookie, Mermaid, and axe-core for the
console's accessibility tests), served by Tasker itself.

They are part of what gets installed. The build backend (`server/build_hook/tasker_build.py`) runs
`fetch()` before setuptools builds a wheel, an sdist or an editable install, so the files land in
`server/static/vendor/` (git-ignored) and ship as package data; the sdist carries them, so a
wheel built from it needs no network. Pages always load them from this server (`asset_url`):
an installed Tasker never points a browser at a CDN, which an air-gapped network cannot reach.

The fetch downloads the pinned npm tarballs over HTTPS with the standard library only (the
build's isolated environment has no npm and no extra packages) and checks each against the
integrity hash pinned below, as a lockfile would. A registry that cannot be reached fails the
build: a package whose pages silently never load is worse than a build that says why.
`npm_config_registry` (npm's own setting) points it at a mirror.
`python -m server.assets [--force]` runs the same fetch by hand.

This module must stay standard-library only: the build backend loads it by path.
"""

import base64
import hashlib
import io
import json
import os
import sys
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

VENDOR = Path(__file__).resolve().parent / "static" / "vendor"
URL_PREFIX = "/tasker/static/vendor"
DEFAULT_REGISTRY = "https://registry.npmjs.org"
# Which tarball each file came from, so a version bump replaces a stale copy.
LOCK_NAME = "versions.json"


class AssetsError(RuntimeError):
    """The browser assets could not be fetched or failed their integrity check."""


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    integrity: str  # the registry's `dist.integrity` of the tarball (`npm view NAME@VERSION`)
    files: tuple[tuple[str, str], ...]  # (path inside the package, local name)

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    def tarball_url(self, registry: str) -> str:
        """The registry's conventional tarball address (scoped names keep their scope)."""
        basename = self.name.rsplit("/", 1)[-1]
        return f"{registry.rstrip('/')}/{self.name}/-/{basename}-{self.version}.tgz"


PACKAGES: tuple[Package, ...] = (
    Package(
        "react",
        "18.2.0",
        "sha512-/3IjMdb2L9QbBdWiW5e3P2/npwMBaU9mHCSCUzNln0ZCYbcfTsGbTJrU/kGemdH2IWmB2ioZ+zkxtmq6g09fGQ==",
        (("umd/react.production.min.js", "react.production.min.js"),),
    ),
    Package(
        "react-dom",
        "18.2.0",
        "sha512-6IMTriUmvsjHUjNtEDudZfuDQUoWXVxKHhlEGSk81n4YFS+r/Kl99wXiwlVXtPBtJenozv2P+hxDsw9eA7Xo6g==",
        (("umd/react-dom.production.min.js", "react-dom.production.min.js"),),
    ),
    Package(
        "js-cookie",
        "3.0.5",
        "sha512-cEiJEAEoIbWfCZYKWhVwFuvPX1gETRYPw6LlaTKoxD3s2AkXzkCjnp6h0V77ozyqj0jakteJ4YqDJT830+lVGw==",
        (("dist/js.cookie.min.js", "js.cookie.min.js"),),
    ),
    Package(
        "graphiql",
        "3.8.3",
        "sha512-cuPDYtXVKV86Pu5PHBX642Odi/uVEE2y1Jxq5rGO/Qy1G2lRp7ZZ7a/T30RzxhuLSWo9zUbzq0P3U49//H0Ugw==",
        (("graphiql.min.css", "graphiql.min.css"), ("graphiql.min.js", "graphiql.min.js")),
    ),
    Package(
        "@graphiql/plugin-explorer",
        "1.0.2",
        "sha512-9j+kg2UjtLZD5EBmGjeWHkoVVxtbShYg2DzbUVebibnZYZM/iMBEF4vaccXJIAm5KaomIPLx0aoNs4LbODyc3Q==",
        (
            ("dist/style.css", "plugin-explorer.css"),
            ("dist/index.umd.js", "plugin-explorer.umd.js"),
        ),
    ),
    Package(
        "mermaid",
        "11.17.2",
        "sha512-V6K3C8EBdEsPFZXSKMJe6ppQOENxuHARr9GvHX4hh47lAbhMRD9qf4oEK7LoaRQxULMa80/qt5gHO73aCleBBg==",
        (("dist/mermaid.min.js", "mermaid.min.js"),),
    ),
    # The accessibility checker the console's browser tests run on each page; no page loads it.
    Package(
        "axe-core",
        "4.10.3",
        "sha512-Xm7bpRXnDSX2YE2YFfBk2FnF0ep6tmG7xPh8iHee8MIcrgq762Nkce856dYtJYLkuIoYZvGfTs/PbZhideTcEg==",
        (("axe.min.js", "axe.min.js"),),
    ),
)

# Strawberry's GraphiQL page loads these exact CDN URLs; `graphiql_html` swaps each for the
# local copy. They are never served to a browser.
CDN = {
    local: f"https://unpkg.com/{package.spec}/{inner}"
    for package in PACKAGES
    for inner, local in package.files
}


def asset_url(name: str) -> str:
    """The URL this server serves a vendored file at (always local, never a CDN)."""
    if name not in CDN:
        raise KeyError(f"{name} is not a vendored asset")
    return f"{URL_PREFIX}/{name}"


def missing(vendor: Path = VENDOR) -> list[str]:
    """Vendored files not present locally."""
    return [local for local in CDN if not (vendor / local).exists()]


def configured_registry() -> str:
    """npm's own `npm_config_registry` (a mirror), read in either case as npm does."""
    for key, value in os.environ.items():
        if key.lower() == "npm_config_registry" and value:
            return value
    return DEFAULT_REGISTRY


def _read_lock(vendor: Path) -> dict[str, str]:
    try:
        lock = json.loads((vendor / LOCK_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return lock if isinstance(lock, dict) else {}


def _is_current(package: Package, vendor: Path, lock: dict[str, str]) -> bool:
    present = all((vendor / local).exists() for _, local in package.files)
    return present and lock.get(package.spec) == package.integrity


def _download(url: str, attempts: int = 3) -> bytes:
    """The body at `url`; a dropped connection is retried, an HTTP error status is not."""
    attempt = 1
    while True:
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                return bytes(response.read())
        except urllib.error.HTTPError:
            raise
        except OSError:
            if attempt == attempts:
                raise
            time.sleep(attempt)
            attempt += 1


def _verify(package: Package, url: str, tarball: bytes) -> None:
    algorithm, expected = package.integrity.split("-", 1)
    actual = base64.b64encode(hashlib.new(algorithm, tarball).digest()).decode()
    if actual != expected:
        raise AssetsError(
            f"{package.spec} from {url} fails its integrity check: "
            f"{algorithm} {actual}, pinned {expected}"
        )


def _extract(package: Package, tarball: bytes, vendor: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        for inner, local in package.files:
            member = tar.extractfile(f"package/{inner}")
            if member is None:
                raise AssetsError(f"{package.spec} has no {inner}")
            partial = vendor / f".{local}.partial"
            partial.write_bytes(member.read())
            partial.replace(vendor / local)  # never a half-written file under the real name


def fetch(
    force: bool = False,
    vendor: Path = VENDOR,
    registry: str | None = None,
    packages: tuple[Package, ...] = PACKAGES,
) -> list[str]:
    """Download each pinned package not already vendored, verify it, keep its listed files.

    Returns the local names written (none when everything is current). Raises `AssetsError`
    naming the package, the URL and the cause when a download or a check fails.
    """
    registry = registry or configured_registry()
    vendor.mkdir(parents=True, exist_ok=True)
    lock = _read_lock(vendor)
    kept: list[str] = []
    for package in packages:
        if not force and _is_current(package, vendor, lock):
            continue
        url = package.tarball_url(registry)
        try:
            tarball = _download(url)
        except OSError as exc:
            raise AssetsError(
                f"could not vendor {package.spec} from {url}: {exc}. Tasker's browser pages "
                "(GraphiQL, diagrams, console graphs) load these files from the server itself, "
                "so the build needs the npm registry (npm_config_registry names a mirror), "
                "or build from Tasker's sdist, which carries them."
            ) from exc
        _verify(package, url, tarball)
        _extract(package, tarball, vendor)
        lock[package.spec] = package.integrity
        (vendor / LOCK_NAME).write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")
        kept += [local for _, local in package.files]
    return kept


def main() -> None:
    try:
        names = fetch(force="--force" in sys.argv)
    except AssetsError as exc:
        sys.exit(f"error: {exc}")
    print(f"vendored {len(names)} files into {VENDOR}" if names else "assets up to date")


if __name__ == "__main__":
    main()
