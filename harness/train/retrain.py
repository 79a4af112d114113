"""Train on a first study's unlearnable prompts only (U4, *The Unlearnability Phenomenon in RLVR*, §3: do more
rollouts, a higher temperature, a higher learning rate or more visits make them learnable?).

``retrain.from`` names a sweep (or run) directory whose RL runs wrote ``prompts.csv`` (``passrate.enabled``); the
run's training split keeps the prompts whose class there is one of ``retrain.classes`` — in at least one of
those runs (``retrain.seeds=any``) or in every one (``every``). The held-out split is untouched. The classes are
read as the text ``prompts.csv`` holds (:mod:`harness.measure.classify` writes them); nothing is re-measured.
"""

from __future__ import annotations

import csv
from pathlib import Path

from omegaconf import DictConfig

from harness.core.registry import BadValue
from harness.data.tasks import Task

CLASSES = ("unlearnable", "learnable", "never-rewarded", "easy")  # as measure.classify writes them (train may not import measure)
SEEDS = ("any", "every")


def source_runs(path: Path | str) -> list[Path]:
    """The RL runs under ``path`` (a run dir or a sweep dir) with ``prompts.csv``: those that also wrote the
    rollout ledger (``ledger.csv``), i.e. sampled and rewarded rollouts."""
    path = Path(path)
    dirs = [path] if (path / "prompts.csv").exists() else sorted(p.parent for p in path.glob("*/prompts.csv"))
    return [d for d in dirs if (d / "ledger.csv").exists()]


def check(cfg: DictConfig, task_cfg: DictConfig | None = None) -> None:
    """``retrain.from`` holds RL runs with ``prompts.csv`` and, given the job's task config, some of the selected
    prompts are in that task's training split (launch time: reads no model; the task is generated once per
    (source, retrain settings, task) in a launch: once per arm of the U4 sweep)."""
    src = cfg.get("from")
    if src is None:
        return
    if not Path(str(src)).is_dir():
        raise BadValue("retrain.from", src, "a sweep or run directory of a first study (passrate.enabled=true)")
    if not source_runs(src):
        raise BadValue("retrain.from", src, "a directory whose RL runs wrote prompts.csv and ledger.csv "
                                            "(a first study with passrate.enabled=true)")
    if task_cfg is not None:
        from omegaconf import OmegaConf

        key = (str(src), OmegaConf.to_yaml(cfg), OmegaConf.to_yaml(task_cfg))
        if key not in _CHECKED:
            from harness.data.tasks import build_task

            restrict(cfg, build_task(task_cfg))  # raises the one-line error when none is in the task
            _CHECKED.add(key)


_CHECKED: set[tuple[str, str, str]] = set()


def selected(cfg: DictConfig) -> tuple[list[str], dict]:
    """The prompt ids to retrain on and what was read (runs, per-run counts)."""
    runs = source_runs(cfg["from"])
    classes = set(cfg.get("classes") or ["unlearnable"])
    per_run: list[set[str]] = []
    for run in runs:
        with (run / "prompts.csv").open() as fh:
            per_run.append({r["prompt_id"] for r in csv.DictReader(fh)
                            if r.get("split") == "train" and r.get("class") in classes})
    every = cfg.get("seeds", "any") == "every"
    ids = set.intersection(*per_run) if every and per_run else set().union(*per_run)
    return sorted(ids), {"from": str(cfg["from"]), "runs": [r.name for r in runs], "classes": sorted(classes),
                         "seeds": "every" if every else "any", "per_run": [len(s) for s in per_run]}


def restrict(cfg: DictConfig, task: Task) -> tuple[Task, dict]:
    """``task`` with its training split cut to :func:`selected` (in the task's order); an error when none of
    the selected prompts is in this task's training split (another task or split seed)."""
    ids, info = selected(cfg)
    keep = set(ids)
    train = [e for e in task.train if e.id in keep]
    if not train:
        raise BadValue("retrain.from", cfg["from"], f"a study of this task (set task= to the first study's): none "
                                                    f"of its {len(ids)} {'/'.join(info['classes'])} prompts is in "
                                                    f"task {task.name!r}'s training split")
    info.update(selected=len(ids), kept=len(train))
    return Task(task.name, train, task.test), info
