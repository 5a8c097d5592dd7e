"""Facts about the machine a benchmark ran on, written next to every result."""

from __future__ import annotations

import hashlib
import os
import platform
from importlib import metadata


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _total_memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def machine_facts() -> dict[str, object]:
    versions = {}
    for package in ("pysail", "pyspark-client", "pyspark", "deltalake", "pyarrow", "pandas", "numpy", "xgboost"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        # a stable id for "same machine" across runs (Python's hash() of a str is salted per process)
        "hostname_hash": hashlib.sha256(platform.node().encode()).hexdigest()[:8],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": _total_memory_gib(),
        "packages": versions,
    }
