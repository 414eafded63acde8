"""Tasker's build backend: setuptools, after vendoring the browser assets into the source tree.

Every way of building Tasker (`pip install .`, `pip install -e .`, `python -m build`, a wheel
built from the sdist) goes through one of the three hooks below, so every installed copy serves
GraphiQL, the diagrams and the console with no internet (see `server/assets.py`). The files go
into the source tree's git-ignored `server/static/vendor/`, where setuptools picks them up as
package data: the wheel installs them, the sdist carries them, and an editable install serves
them in place. When they are already there and current (an unpacked sdist, a second build),
nothing is downloaded. All other hooks are setuptools' own.
"""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from setuptools import build_meta
from setuptools.build_meta import *  # noqa: F403

Settings = dict[str, Any] | None  # PEP 517's config_settings
ASSETS = Path(__file__).resolve().parent.parent / "assets.py"


def _assets_module() -> ModuleType:
    """`server/assets.py` loaded by path: the source tree is not on the build's sys.path."""
    spec = importlib.util.spec_from_file_location("_tasker_build_assets", ASSETS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _vendor_assets() -> None:
    assets = _assets_module()
    fetched = assets.fetch()
    if fetched:
        sys.stderr.write(
            f"tasker: vendored {len(fetched)} browser asset files into {assets.VENDOR}\n"
        )


def build_wheel(
    wheel_directory: str, config_settings: Settings = None, metadata_directory: str | None = None
) -> str:
    _vendor_assets()
    return str(build_meta.build_wheel(wheel_directory, config_settings, metadata_directory))


def build_sdist(sdist_directory: str, config_settings: Settings = None) -> str:
    _vendor_assets()
    return str(build_meta.build_sdist(sdist_directory, config_settings))


def build_editable(
    wheel_directory: str, config_settings: Settings = None, metadata_directory: str | None = None
) -> str:
    _vendor_assets()
    return str(build_meta.build_editable(wheel_directory, config_settings, metadata_directory))
