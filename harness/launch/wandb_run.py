"""One W&B run per job, offline unless the user asks otherwise, grouped by sweep, always finished.

W&B is a side channel: when it cannot start (a bad ``WANDB_*`` setting, no service, no network for
``logger.mode=online``), the job logs nothing to W&B, says so in one line and in ``run.json`` (``wandb``), and
trains as usual; a sweep goes on.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf


def start_wandb(cfg: DictConfig, job_dir: Path, rec: Any = None) -> Any:
    """The job's W&B run, or None (logger off, or W&B failed to start: recorded in ``rec``)."""
    lg = cfg.get("logger")
    if not lg or lg.get("backend") != "wandb":
        return None
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")
    try:
        run = wandb.init(
            project=lg.project, entity=lg.get("entity"), mode=lg.mode, dir=str(job_dir),
            group=cfg.name, name=job_dir.name, job_type=f"{cfg.objective.name}",
            tags=[cfg.adapter.name, cfg.objective.name, f"seed{cfg.seed}"],
            config=OmegaConf.to_container(cfg, resolve=True), reinit="finish_previous",
        )
    except Exception as exc:  # W&B raises many types (UsageError, CommError, ValueError, ...)
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
        print(f"[harness] warning: W&B did not start, this run logs without it ({reason})", file=sys.stderr,
              flush=True)
        if rec is not None:
            rec.update(wandb={"status": "failed to start", "reason": reason})
        return None
    if rec is not None:
        rec.update(wandb={"status": "started", "mode": lg.mode, "id": run.id})
    return run


def finish_wandb(rec: Any = None) -> None:
    try:
        import wandb
    except ImportError:
        return
    if wandb.run is not None:
        if rec is not None:
            wandb.run.summary.update({"status": rec.data.get("status"), **{
                f"time/{k}": v for k, v in rec.data.get("timings", {}).items()}})
        wandb.finish(exit_code=0 if rec is None or rec.data.get("status") == "done" else 1)
