"""Format warm-up: a short full SFT on the task's prompt format, so that the base answers in the expected
format and training prompts spread over pass rates (the raw SmolLM2 scores ~0.13 on 1-digit sums).

This module only trains; :func:`harness.models.warmed_base` caches the result by a hash of the source and the
warm-up settings, and every run of every sweep that names the same settings starts from it. When a run has
several processes the warm-up is built in a single-process child, ``python -m harness.models <json spec>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from harness.objectives import sft
from harness.tasks import build_task


def format_warmup(model: Any, tok: Any, warm: DictConfig, device: str, work_dir: Path) -> None:
    """Train ``model`` in place for ``warm.steps`` steps of full SFT on ``warm.task``."""
    # The warm-up task uses its own seed, so its prompts are not the sweep's training prompts.
    task = build_task(warm.task)
    work_dir.mkdir(parents=True, exist_ok=True)
    sft.train(model, tok, task, warm, lr=warm.lr, seed=warm.get("seed", 0), out_dir=work_dir, device=device,
              label="warm-up")

