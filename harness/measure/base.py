"""The measurement base: what every post-training measurement shares, written once.

A measurement is one module in :mod:`harness.measure` with a function ``(cfg, job_dir, merged, tok, task, base)
-> dict`` decorated with :func:`measurement` (its config block, whose ``enabled`` switches it on; its artifact;
its place in the order). :func:`run_measurements` runs the enabled ones after training, on the main process
(the run's one writer), each in its own stage of ``run.json``. The shared pieces: :func:`cached_on_base` (the
base's side computed once per base weights and settings, with the seconds it cost here) and
:func:`write_artifact` (NaN to null, an atomic write, the W&B summary).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.registry import Registry
from harness.core.store import atomic_write_json, once_per_base


@dataclass(frozen=True)
class Measurement:
    name: str  # the config block (``<name>.enabled``) and the run stage
    artifact: str  # the file it writes in the job dir
    order: int  # measurements run in this order (eval first: it is what most runs keep)
    run: Callable[..., Any]  # (cfg, job_dir, merged, tok, task, base) -> what it wrote (unused by the loop)


REGISTRY: Registry[Measurement] = Registry("measurement", "harness.measure", skip=("base",))


def measurement(name: str, artifact: str, order: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a post-training measurement: ``@measurement("passk", "passk.json", 40)``."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        REGISTRY.register(name)(Measurement(name, artifact, order, fn))
        return fn

    return deco


def ordered() -> list[Measurement]:
    """Every registered measurement, in run order."""
    return sorted(REGISTRY.values(), key=lambda m: (m.order, m.name))


def run_measurements(cfg: Any, rec: Any, job_dir: Path, merged: Any, tok: Any, task: Any, base: Path | str) -> None:
    """The measurements the config enables, in order, each timed as a stage of the run record."""
    for m in ordered():
        block = cfg.get(m.name)
        if block is not None and block.get("enabled", False):
            with rec.stage(m.name):
                m.run(cfg, job_dir, merged, tok, task, base)


def cached_on_base(kind: str, base: Path | str, key: Any, compute: Callable[[], Any],
                   save: Callable[[Any, Path], None] | None = None, load: Callable[[Path], Any] | None = None,
                   suffix: str = ".json") -> tuple[Any, float]:
    """``compute()`` once per (base weights, ``key``) (:func:`harness.core.store.once_per_base`; JSON unless
    ``save``/``load`` say otherwise): (value, seconds spent computing it here, 0 when it came from the cache)."""
    spent = [0.0]

    def timed() -> Any:
        t0 = time.time()
        value = compute()
        spent[0] = time.time() - t0
        return value

    value = once_per_base(kind, base, key, timed, save=save or (lambda v, p: p.write_text(json.dumps(v))),
                          load=load or (lambda p: json.loads(p.read_text())), suffix=suffix)
    return value, spent[0]


def scrub(value: Any) -> Any:
    """NaN (no value) as null, at any depth: JSON has no NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


def write_artifact(job_dir: Path | str, name: str, out: dict, summary: dict | None = None) -> dict:
    """Write ``out`` (NaN as null) to ``job_dir/name`` atomically and put ``summary``'s numbers in the W&B run's
    summary when one is active; returns what was written."""
    out = scrub(out)
    atomic_write_json(Path(job_dir) / name, out)
    if summary:
        wandb_summary(summary)
    return out


def wandb_summary(values: dict) -> None:
    """Put scalar results in the W&B run's summary when one is active."""
    try:
        import wandb
    except ImportError:
        return
    if wandb.run is not None:
        wandb.run.summary.update({k: v for k, v in values.items() if isinstance(v, int | float)
                                  and not (isinstance(v, float) and math.isnan(v))})
