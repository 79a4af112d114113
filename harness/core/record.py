"""``run.json``: status (running/done/failed + reason), timings per stage, versions, seed, git sha."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from omegaconf import DictConfig

from harness.core.overrides import LAUNCH_KEYS
from harness.core.store import atomic_write_json, read_json, settings_hash

PACKAGES = ("torch", "transformers", "peft", "trl", "lm_eval", "hydra-core", "wandb", "reasoning_gym")


def versions() -> dict[str, str]:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = "missing"
    return out


def git_sha() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def settings_of(cfg: DictConfig) -> dict:
    """The resolved config without the keys that only say where or how a job runs: what its numbers depend on."""
    from omegaconf import OmegaConf

    return {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k not in LAUNCH_KEYS}


def changed_settings(stored: dict | None, now: dict) -> list[str]:
    """Dotted keys whose value differs between a run's stored settings and ``now`` (empty when nothing was
    stored: a run from before settings were recorded). A key the run predates, now at its default in the config
    tree (:func:`harness.core.config.key_defaults`), is no change: the run used that value."""
    from harness.core.config import key_defaults

    if not stored:
        return []

    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    a, b = flat(stored), flat(now)
    defaults = key_defaults()
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k)
                  and not (k not in a and b[k] in defaults.get(k, [])))


def read_run(job_dir: Path) -> dict | None:
    """The run.json of ``job_dir``, or None when missing or unreadable."""
    data = read_json(Path(job_dir) / "run.json")
    return data if isinstance(data, dict) else None


class RunRecord:
    """The run's record, kept in memory and saved atomically after every change by the one writer (the main
    process of a run on several processes; ``write=False`` on the others)."""

    def __init__(self, job_dir: Path, write: bool = True):
        self.path = job_dir / "run.json"
        self.write = write
        self.data: dict = read_run(job_dir) or {}
        self.t0 = time.time()

    def status(self) -> str | None:
        return self.data.get("status")

    def start(self, cfg: DictConfig) -> None:
        self.t0 = time.time()
        self.data = {
            "status": "running", "reason": None, "seed": cfg.seed, "name": cfg.get("name"),
            "adapter": cfg.adapter.name, "objective": cfg.objective.name, "task": cfg.task.name,
            "model": cfg.model.name, "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "timings": {},
            "versions": versions(), "git_sha": git_sha(), "pid": os.getpid(),
            # what the numbers depend on: a relaunch retrains a done run whose settings changed since
            "settings": settings_of(cfg), "settings_hash": settings_hash(settings_of(cfg)),
        }
        self.save()

    def update(self, **kw) -> None:
        self.data.update(kw)
        self.save()

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t = time.time()
        try:
            yield
        finally:
            self.data["timings"][name] = round(time.time() - t, 2)
            self.save()

    def finish(self, status: str, reason: str | None = None) -> None:
        self.data.update(status=status, reason=reason, finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
        self.data["timings"]["total"] = round(time.time() - self.t0, 2)
        self.save()

    def save(self) -> None:
        if self.write:
            atomic_write_json(self.path, self.data)  # a killed job never leaves half a run.json
