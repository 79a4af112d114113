"""One W&B run per job, offline unless the user asks otherwise, grouped by sweep, always finished."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf


def start_wandb(cfg: DictConfig, job_dir: Path):
    lg = cfg.get("logger")
    if not lg or lg.get("backend") != "wandb":
        return None
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")
    return wandb.init(
        project=lg.project, entity=lg.get("entity"), mode=lg.mode, dir=str(job_dir),
        group=cfg.name, name=job_dir.name, job_type=f"{cfg.objective.name}",
        tags=[cfg.adapter.name, cfg.objective.name, f"seed{cfg.seed}"],
        config=OmegaConf.to_container(cfg, resolve=True), reinit="finish_previous",
    )


def finish_wandb(rec=None) -> None:
    try:
        import wandb
    except ImportError:
        return
    if wandb.run is not None:
        if rec is not None:
            wandb.run.summary.update({"status": rec.data.get("status"), **{
                f"time/{k}": v for k, v in rec.data.get("timings", {}).items()}})
        wandb.finish(exit_code=0 if rec is None or rec.data.get("status") == "done" else 1)
