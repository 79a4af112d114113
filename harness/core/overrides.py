"""Command-line overrides of a job: which keys only say where or how a job is launched, and the job
directory name of a sweep job.

A leaf module: the launcher side (job names, via a Hydra resolver) and the reader side (:mod:`harness.analysis.sweep`,
which finds the swept settings) share one definition of what an override is and which keys never change a
number.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

# Keys that say where or how a job runs and is logged; they cannot change any measured number, so they
# neither name a job directory nor become a setting column. Everything else that varies is a setting.
LAUNCH_KEYS = ("sweeps", "name", "out_root", "force", "logger", "hydra", "report", "max_local_jobs", "dist", "fault")

# Longest readable part of a job directory name (file systems allow 255 bytes per name).
MAX_READABLE = 120
SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.+\-]*$")


def split_override(item: str) -> tuple[str, str]:
    """``'+adapter.r=8'`` -> ``('adapter.r', '8')``."""
    key, _, value = str(item).partition("=")
    return key.lstrip("+~"), value


def is_launch_key(key: str) -> bool:
    """True for keys that only select where/how a job runs (``logger.mode``, ``hydra/launcher``, ...)."""
    return re.split(r"[./]", key, maxsplit=1)[0] in LAUNCH_KEYS


def parse_overrides(items: Iterable[str]) -> dict[str, str]:
    """Overrides as ``{key: value}``, launch keys included."""
    return dict(split_override(i) for i in items)


def job_dir_name(items: Iterable[str]) -> str:
    """The directory name of one sweep job: distinct for distinct settings, bounded in length.

    Readable ``key=value`` pairs of the job's overrides (launch keys left out, so a relaunch with ``force=true``
    or another launcher finds the same directories); when a value cannot appear in a file name (a path, a
    list) or the name would be too long, the readable part is cut and a short hash of every non-launch
    override is appended. The full overrides are kept in the job's ``.hydra/overrides.yaml``.
    """
    pairs = sorted((k, v) for k, v in (split_override(i) for i in items) if not is_launch_key(k))
    readable = [f"{k}={v}" for k, v in pairs if SAFE_VALUE.match(v) and len(v) <= 40]
    name = ",".join(readable)
    if len(readable) == len(pairs) and len(name) <= MAX_READABLE:
        return name or "default"
    digest = hashlib.sha256("\n".join(f"{k}={v}" for k, v in pairs).encode()).hexdigest()[:10]
    if len(name) > MAX_READABLE:
        name = name[:MAX_READABLE].rsplit(",", 1)[0]
    return f"{name},h={digest}" if name else f"h={digest}"
