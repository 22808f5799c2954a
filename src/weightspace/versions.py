"""The versions that wrote a result: weightspace's own from the installed package's metadata (one
source, ``pyproject.toml``), so no module needs to import the package root for it."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version


def weightspace_version() -> str:
    try:
        return version("weightspace")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def runtime_versions() -> dict:
    """weightspace, torch and Python, as manifests and run configs record them."""
    import torch

    return {"weightspace": weightspace_version(), "torch": torch.__version__, "python": platform.python_version()}
