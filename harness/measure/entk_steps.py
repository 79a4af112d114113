"""The eNTK along the update path (``trajectory.entk=true``): is E1 "true on a per-batch basis"?

The essay (seeds, E1) says RL rescales the eNTK's eigenvalues while SFT rotates its eigenvectors, and that this
holds per batch, not only between the start and the end of a run. With full trajectory snapshots
(:mod:`harness.train.trajectory`) the eNTK Gram of W0 + ΔW_t is computed at every snapshot step t on the same probe
set as ``entk.json`` (:func:`harness.measure.entk.entk_gram`, the first ``entk.n_probe`` held-out prompts), and
consecutive Grams are compared (:func:`harness.measure.entk.compare_grams`: principal angles of the top-k
eigenvectors, relative eigenvalue change). Each interval's angle is set beside the size of that interval's update,
‖ΔW_{t'} − ΔW_t‖_F / ‖W0‖_F, so SFT and RLVR compare per unit of movement (claim E1.B). The Gram at step 0 is the
base's, cached once per base like ``entk.json``'s.

Writes ``entk_steps.json``: the steps, per interval the angle, the eigenvalue change and the update size, and the
mean angle per unit update over the intervals.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
from omegaconf import DictConfig
from safetensors.torch import load_file

from harness.core.config import block
from harness.core.weights import snapshot_files
from harness.measure.base import write_artifact
from harness.measure.entk import base_gram, compare_grams, entk_gram


def entk_steps_for_run(cfg: DictConfig, job_dir: Path, merged, tok, task, base: Path | str) -> dict:
    """Gram at every snapshot, angles between consecutive ones; writes ``entk_steps.json``."""
    from harness.data import models

    t0 = time.time()
    traj = Path(job_dir) / "trajectory"
    meta = json.loads((traj / "meta.json").read_text())
    if meta.get("kind") != "full":  # sketch=auto chose a sketch: say so in the artifact, keep the run
        why = "trajectory.entk needs full snapshots (trajectory.sketch=false): a sketch cannot rebuild W"
        print(f"[harness] entk_steps skipped: {why}", flush=True)
        return write_artifact(job_dir, "entk_steps.json", {"skipped": why}, {})
    ec = block(cfg, "entk")
    examples = task.test[: ec["n_probe"]]
    device = str(next(merged.parameters()).device)
    model, _ = models.load_base(cfg.model, base, device)
    model.eval()
    files = snapshot_files(traj)
    w0 = {name: model.get_parameter(name).detach().clone() for name in load_file(str(next(iter(files.values()))))}
    w0_norm = math.sqrt(sum(float(w.double().pow(2).sum()) for w in w0.values()))
    grams, prev, sizes = [], None, []
    for step, path in files.items():
        delta = load_file(str(path))
        if step == 0 and all(not bool(d.any()) for d in delta.values()):  # ΔW_0 = 0: the base's Gram, cached
            grams.append(base_gram(cfg.model, base, examples, ec["batch_size"], device))
        else:
            with torch.no_grad():
                for name, d in delta.items():
                    model.get_parameter(name).copy_(w0[name] + d.to(w0[name].device, w0[name].dtype))
            grams.append(entk_gram(model, tok, examples, ec["batch_size"]))
        if prev is not None:
            sizes.append(math.sqrt(sum(float((delta[n].double() - prev[n].double()).pow(2).sum()) for n in delta))
                         / w0_norm)
        prev = delta
    steps = list(files)
    intervals = []
    for i, size in enumerate(sizes):
        c = compare_grams(grams[i], grams[i + 1], ec["k"])
        intervals.append({"from": steps[i], "to": steps[i + 1], "entk_mean_angle_deg": c["entk_mean_angle_deg"],
                          "entk_eig_rel_change": c["entk_eig_rel_change"], "rel_step": size,
                          "angle_per_rel": c["entk_mean_angle_deg"] / size if size > 0 else None})
    per = [iv["angle_per_rel"] for iv in intervals if iv["angle_per_rel"] is not None]
    out = {"steps": steps, "n_probe": len(examples), "k": ec["k"], "intervals": intervals,
           "mean_angle_per_rel": sum(per) / len(per) if per else None, "seconds": round(time.time() - t0, 2)}
    del model
    return write_artifact(job_dir, "entk_steps.json", out,
                          {"entk_steps/mean_angle_per_rel": out["mean_angle_per_rel"]})
