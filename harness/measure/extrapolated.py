"""Accuracy of the rank-1-extrapolated model (``trajectory.eval_extrapolated``): W0 + ΔŴ_T, where ΔŴ_T extrapolates
the first part of the run's update path to its last step (``trajectory/extrapolated.safetensors``, written by
:mod:`harness.analysis.trajectory`), evaluated with the same lm-eval tasks as the run and paired with the trained
model on the same prompts -> ``trajectory_eval.json``.

If a path is linear enough, training past the fit point adds nothing the extrapolation misses; the paired difference
(extrapolated − trained, bootstrap interval and McNemar's p) says how much it does miss in accuracy.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from safetensors import safe_open

from harness.data import models
from harness.measure.base import write_artifact
from harness.measure.evaluate import compare, eval_root, evaluate_model, load_tasks, prepare_tasks


def extrapolated_model(cfg: DictConfig, base: Path | str, path: Path) -> tuple[Any, Any]:
    """The base W0 with ΔŴ_T added to every matrix the file holds (in the model's dtype, on its device)."""
    model, tok = models.load_base(cfg.model, base, models.device_for(cfg.model))
    with safe_open(str(path), framework="pt") as f, torch.no_grad():
        for name in f.keys():
            p = model.get_parameter(name)
            p.add_(f.get_tensor(name).to(p.device, p.dtype))
    model.eval()
    return model, tok


def evaluate_extrapolated(cfg: DictConfig, job_dir: Path, merged, tok, task, base: Path | str) -> dict:
    """Evaluate W0 + ΔŴ_T and compare it with the trained model (its ``eval.json`` scores, or evaluated here when
    the run had no evaluation); write ``trajectory_eval.json``."""
    job_dir = Path(job_dir)
    path = job_dir / "trajectory" / "extrapolated.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the extrapolated model needs full snapshots "
                                "(trajectory.sketch=false) and the trajectory analysis (trajectory.analyze=true)")
    t0 = time.time()
    named = [str(n) for n in (cfg.eval.get("tasks") or [])]
    task_dir, meta = prepare_tasks(cfg, task, eval_root(job_dir))
    tasks = load_tasks(task_dir, list(meta), named)
    batch, limit = cfg.eval.batch_size, cfg.eval.get("limit")
    trained_file = job_dir / "eval.json"
    trained = (json.loads(trained_file.read_text())["tasks"] if trained_file.exists()
               else evaluate_model(merged, tok, tasks, batch, limit)[0])
    model, etok = extrapolated_model(cfg, base, path)
    results, _ = evaluate_model(model, etok, tasks, batch, limit)
    del model
    with safe_open(str(path), framework="pt") as f:
        info = f.metadata() or {}
    out_tasks = {}
    for name, res in results.items():
        acc_t, run = (trained.get(name) or {}).get("accuracy"), (trained.get(name) or {}).get("scores") or {}
        out_tasks[name] = {"accuracy_extrapolated": res["accuracy"], "ci_extrapolated": res["ci"],
                           "accuracy_trained": acc_t, "n": res["n"],
                           "delta": None if acc_t is None or res["accuracy"] is None else round(res["accuracy"] - acc_t, 6),
                           **compare(res["scores"], run), "scores": res["scores"]}
    out = {"fit_fraction": float(info.get("fit_fraction", "nan")), "fit_steps": json.loads(info.get("fit_steps", "[]")),
           "step": int(info.get("step", -1)), "seconds": round(time.time() - t0, 2), "tasks": out_tasks}
    shown = " ".join(f"{k}={v['accuracy_extrapolated']:.3f} (trained {v['accuracy_trained']:.3f})"
                     for k, v in out_tasks.items() if v["accuracy_trained"] is not None)
    print(f"[harness] extrapolated model: {shown}", flush=True)
    summary = {f"trajectory/extrapolated/{k}/accuracy": v["accuracy_extrapolated"] for k, v in out_tasks.items()}
    return write_artifact(job_dir, "trajectory_eval.json", out, summary)
