"""Format versions of what the project stores and reads back later: novelty references and the other tags of a
registered model version, training-set references, model config files. Each record carries `format_version`;
its reader names the versions it reads and refuses any other in one line that names both.

A writer bumps its format's version when what it writes changes meaning or shape, and its reader keeps the old
version in its supported list only while it still reads it correctly. Version 0 names records written before
formats were versioned (2026-12-07): they have no `format_version` key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lake.errors import UnsupportedFormatError

FORMAT_VERSION_KEY = "format_version"
UNVERSIONED = 0  # written before 2026-12-07, when formats got versions


def stamped(record: Mapping[str, Any], version: int) -> dict[str, Any]:
    """`record` with its format version, for writing."""
    return {FORMAT_VERSION_KEY: version, **record}


def _named(version: object) -> str:
    return (
        "0 (unversioned)" if version == UNVERSIONED else repr(version) if not isinstance(version, int) else str(version)
    )


def check_format(record: Mapping[str, Any], what: str, supported: tuple[int, ...], remedy: str) -> int:
    """The record's format version when this build reads it; otherwise UnsupportedFormatError naming `what`, the
    version found, the versions supported, and `remedy` (how to get a record this build reads)."""
    version = record.get(FORMAT_VERSION_KEY, UNVERSIONED)
    if isinstance(version, bool) or not isinstance(version, int) or version not in supported:
        raise UnsupportedFormatError(
            f"{what} is in format version {_named(version)}; this build reads version(s) "
            f"{', '.join(_named(v) for v in supported)}: {remedy}"
        )
    return version
