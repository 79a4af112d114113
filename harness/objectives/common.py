"""What both objectives share: TRL argument defaults for CPU/GPU, and the per-step log callback."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback


class NonFiniteLoss(FloatingPointError):
    """Raised from the log callback so the run is marked failed with the reason; the sweep goes on."""


def trainer_args(cfg, out_dir: Path, lr: float, seed: int, device: str) -> dict[str, Any]:
    """Keyword arguments shared by SFTConfig and GRPOConfig."""
    return dict(
        output_dir=str(out_dir / "trainer"),
        max_steps=cfg.steps,
        learning_rate=lr,
        lr_scheduler_type=cfg.get("lr_scheduler", "constant"),
        warmup_steps=cfg.get("warmup_steps", 0),
        weight_decay=0.0,  # sparse masks rely on it: decay would move unmasked entries
        max_grad_norm=cfg.get("max_grad_norm", 1.0),
        gradient_accumulation_steps=cfg.get("grad_accum", 1),
        logging_steps=1,
        save_strategy="no",
        report_to="none",  # logged by LogCallback into train_log.jsonl and the job's own W&B run
        seed=seed,
        data_seed=seed,
        bf16=bool(cfg.get("bf16_autocast", False)) and device != "cpu",
        use_cpu=device == "cpu",
        dataloader_num_workers=0,
        disable_tqdm=False,
        gradient_checkpointing=bool(cfg.get("gradient_checkpointing", False)),  # GPU users: true for big models
    )


class LogCallback(TrainerCallback):
    """One JSON line per step in ``train_log.jsonl``, the same metrics to W&B, a readable line on stdout, and a
    failure on a non-finite loss."""

    KEYS = ("loss", "reward", "reward_std", "kl", "frac_reward_zero_std", "learning_rate", "grad_norm")

    def __init__(self, path: Path, label: str = ""):
        self.path = path
        self.label = label
        self.t0 = time.time()
        path.write_text("")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "train_runtime" in logs:
            return
        row = {"step": state.global_step, "time": round(time.time() - self.t0, 3)}
        row.update({k: float(v) for k, v in logs.items() if isinstance(v, int | float)})
        with self.path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        try:
            import wandb

            if wandb.run is not None:
                wandb.log({f"train/{k}": v for k, v in row.items() if k != "step"}, step=state.global_step)
        except ImportError:
            pass
        shown = " ".join(f"{k}={row[k]:.4g}" for k in self.KEYS if k in row)
        print(f"[{self.label}] step {state.global_step}/{state.max_steps} {shown}", flush=True)
        for key in ("loss", "grad_norm"):
            if key in row and not math.isfinite(row[key]):
                raise NonFiniteLoss(f"non-finite {key} {row[key]} at step {state.global_step}")


def free_memory() -> None:
    """Collect the finished job's objects and return cached GPU memory before the next job."""
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
