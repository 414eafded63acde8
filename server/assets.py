"""Third-party browser assets, fetched from the npm registry at setup time (`make setup`).

They land in the git-ignored `server/static/vendor/` so the GraphiQL explorer, the Mermaid
diagrams and the console work with no internet. Pages fall back to the CDN copy of the same
pinned file when a local one is missing (`asset_url`).
"""

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VENDOR = Path(__file__).resolve().parent / "static" / "vendor"
URL_PREFIX = "/tasker/static/vendor"

# npm spec -> files to keep, as (path inside the package, local name).
PACKAGES: dict[str, list[tuple[str, str]]] = {
    "react@18.2.0": [("umd/react.production.min.js", "react.production.min.js")],
    "react-dom@18.2.0": [("umd/react-dom.production.min.js", "react-dom.production.min.js")],
    "js-cookie@3.0.5": [("dist/js.cookie.min.js", "js.cookie.min.js")],
    "graphiql@3.8.3": [
        ("graphiql.min.css", "graphiql.min.css"),
        ("graphiql.min.js", "graphiql.min.js"),
    ],
    "@graphiql/plugin-explorer@1.0.2": [
        ("dist/style.css", "plugin-explorer.css"),
        ("dist/index.umd.js", "plugin-explorer.umd.js"),
    ],
    "mermaid@11.17.2": [("dist/mermaid.min.js", "mermaid.min.js")],
}

CDN = {
    local: f"https://unpkg.com/{spec}/{inner}"
    for spec, files in PACKAGES.items()
    for inner, local in files
}


def asset_url(name: str) -> str:
    """The local URL of a vendored file, or its pinned CDN URL when it was not fetched."""
    return f"{URL_PREFIX}/{name}" if (VENDOR / name).exists() else CDN[name]


def missing() -> list[str]:
    """Vendored files not present locally."""
    return [local for local in CDN if not (VENDOR / local).exists()]


def fetch(force: bool = False) -> list[str]:
    """Download (npm pack) each pinned package and keep the files listed; returns names kept."""
    if shutil.which("npm") is None:
        raise RuntimeError("npm is needed to fetch the browser assets")
    VENDOR.mkdir(parents=True, exist_ok=True)
    kept: list[str] = []
    for spec, files in PACKAGES.items():
        if not force and all((VENDOR / local).exists() for _, local in files):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            out = (
                subprocess.run(
                    ["npm", "pack", spec, "--silent", "--pack-destination", tmp],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            with tarfile.open(Path(tmp) / out) as tar:
                for inner, local in files:
                    member = tar.extractfile(f"package/{inner}")
                    if member is None:
                        raise RuntimeError(f"{spec} has no {inner}")
                    (VENDOR / local).write_bytes(member.read())
                    kept.append(local)
    return kept


if __name__ == "__main__":
    names = fetch(force="--force" in sys.argv)
    print(f"vendored {len(names)} files into {VENDOR}" if names else "assets up to date")
