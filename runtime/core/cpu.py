"""What this machine's CPU is, for reports and for choices that depend on it (Linux's
/proc/cpuinfo; elsewhere the answers fall back to what the platform module knows)."""
from __future__ import annotations

import platform
from pathlib import Path


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def cpu_name() -> str:
    for line in _cpuinfo():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_flags() -> set[str]:
    """The instruction-set flags of the first CPU (empty where /proc/cpuinfo is not there)."""
    for line in _cpuinfo():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def has_avx512() -> bool:
    return "avx512f" in cpu_flags()
