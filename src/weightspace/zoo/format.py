"""Names and checks of the on-disk zoo format (documented in docs/zoo-format.md)."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ZooFormatError

FORMAT_NAME = "weightspace-zoo"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TABLE = "checkpoints.parquet"
REQUIRED_MANIFEST_KEYS = ("format", "format_version", "kind", "config", "architecture", "shards", "table")


def shard_file(what: str, shard: int) -> str:
    """Relative path of a shard's ``weights`` or ``rollouts`` file."""
    return f"{what}/shard-{shard:05d}.safetensors"


def read_manifest(path) -> dict:
    """The manifest of zoo directory ``path``, with a one-line error for anything else."""
    path = Path(path)
    if not path.is_dir():
        raise ZooFormatError(f"{path} is not a directory")
    file = path / MANIFEST
    if not file.exists():
        raise ZooFormatError(f"{path} is not a weightspace zoo: it has no {MANIFEST}")
    try:
        manifest = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ZooFormatError(f"{file} is not valid JSON ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise ZooFormatError(f"{file} is not a weightspace zoo manifest (format field is not {FORMAT_NAME!r})")
    missing = [k for k in REQUIRED_MANIFEST_KEYS if k not in manifest]
    if missing:
        raise ZooFormatError(f"{file} lacks the fields {missing}")
    if manifest["format_version"] != FORMAT_VERSION:
        raise ZooFormatError(
            f"{file} has format version {manifest['format_version']}; this weightspace reads version {FORMAT_VERSION}"
        )
    return manifest


def new_manifest(kind: str, config, architecture: dict, sections: dict, shards: int, created_with: dict) -> dict:
    """The manifest of a zoo about to be written (by a build or an import): nothing finished yet.
    ``sections``: the task family's ``task``, ``splits`` and ``rollouts`` descriptions."""
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "config": config.to_json(),
        "seed": config.seed,
        "created_with": created_with,
        "architecture": architecture,
        "task": sections["task"],
        "splits": sections["splits"],
        "rollouts": sections["rollouts"],
        "shards": {"total": shards, "completed": []},
        "table": {"file": TABLE, "rows": 0},
    }
