"""Update trajectories during training (``trajectory.every=N``, off at 0): ΔW snapshots and the per-step PULSE figure.

Written into ``<job>/trajectory/`` by the main process (the run's one writer), read back by
:mod:`harness.analysis.trajectory`:

- ``step_<t>.safetensors``: ΔW_t of every analyzed matrix at step 0, every ``every`` optimizer steps and the last
  step, fp32, by the adapter's own :meth:`~harness.train.adapters.base.Adapter.delta` (the one ΔW definition: exact
  from the factors for LoRA-family layers, the merged difference otherwise), so the last snapshot is
  ``delta.safetensors``. For big models a sketch ΔW_t·Ω instead (:func:`sketch`).
- ``sparsity.jsonl``: one line per optimizer step, the PULSE measurement (arXiv 2602.03839): per matrix and for the
  whole model, the share of entries whose *stored* value changed in that step — the merged weight the forward pass
  uses, cast to the storage dtype (``store_dtype``) and to bf16 (always: PULSE's point is that a bf16 checkpoint
  hides most small updates), compared with the previous step's (:func:`changed_share`).
- ``meta.json``: the settings, and per snapshot its bytes and the seconds it took (what trajectories cost).

Sharded engines (FSDP, DeepSpeed) do not hold the weights whole on one process; snapshots there would need a
gather per step and are refused (the check before launch refuses ``dist.fsdp`` with ``trajectory.every > 0``).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from transformers import TrainerCallback

from harness.core import dist
from harness.core.weights import snapshot_name

#: Automatic sketch: when all full fp32 snapshots of a run together would exceed ``trajectory.max_full_gb``.
GB = 1024**3


def changed_share(prev: torch.Tensor, now: torch.Tensor) -> tuple[int, int]:
    """(entries whose value differs, entries) between two tensors already cast to the storage dtype: the same
    criterion as the analyzer's bf16 sparsity (identity after the cast), applied to consecutive steps."""
    return int((prev != now).sum()), prev.numel()


def omega(n: int, dim: int, seed: int) -> torch.Tensor:
    """The fixed sketch matrix Ω ∈ R^{n×dim} of a matrix with n columns: i.i.d. N(0, 1/dim) entries, seeded by
    (seed, n), so every snapshot of a run (and every run with the same seed) uses the same Ω."""
    gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(n))
    return torch.randn(n, dim, generator=gen, dtype=torch.float64).div_(dim**0.5)


def sketch(delta: dict[str, torch.Tensor], dim: int, seed: int) -> dict[str, torch.Tensor]:
    """ΔW·Ω per matrix (m×dim, fp32, computed in fp32: float64 doubled the time for a rounding of ~1e-7 relative,
    far below what the sketch approximates), Ω from :func:`omega`.

    What is preserved *exactly*: every linear relation among the snapshots, since X ↦ XΩ is one fixed linear map
    for all t. A series ΔW_t = a(t)·D stays a(t)·(DΩ) (rank 1 in time: its rank-1 R² is 1), ΔW_t = (t/T)·ΔW_T stays
    linear in t (linear R² 1), and the least-squares extrapolation (a linear combination of snapshots, see
    :mod:`harness.analysis.trajectory`) commutes with Ω: the sketch of the extrapolation is the extrapolation of the
    sketches. What is preserved *approximately*: norms and inner products, hence the R² values of a series that is
    not exactly linear and the relative extrapolation error. E[ΩΩᵀ] = I, so E‖XΩ‖²_F = ‖X‖²_F, with a relative
    standard deviation of at most √(2/dim) (reached when X has rank 1; X of stable rank r: about √(2/(r·dim))):
    dim = 64 gives ≤ 18 % on one squared norm of a rank-1 matrix, far less on the high-rank ΔW of full
    fine-tuning. Not preserved: anything entrywise (sparsity, masks) and the extrapolated model itself, which a
    sketch cannot rebuild — so a sketched run has no ``extrapolated.safetensors``.
    """
    out, cache = {}, {}
    for name, d in delta.items():
        n = d.shape[1]
        if n not in cache:
            cache[n] = omega(n, dim, seed).float()
        out[name] = (d.float() @ cache[n]).contiguous()
    return out


def snapshot_steps(max_steps: int, every: int) -> list[int]:
    """The steps with a snapshot: 0, every ``every`` steps, and the last."""
    return sorted({0, *range(every, max_steps + 1, every), max_steps})


class TrajectoryCallback(TrainerCallback):
    """Records the trajectory of one run (see the module docstring). Main process only."""

    def __init__(self, out_dir: Path, adapter: Any, original: dict[str, torch.Tensor], names: list[str],
                 every: int, dtypes: list[str], sketch: bool | str, sketch_dim: int, sketch_seed: int,
                 max_full_gb: float):
        self.dir, self.adapter, self.original, self.names = out_dir, adapter, original, names
        self.every, self.sketch_setting = every, sketch
        self.dim, self.seed, self.max_full_gb = sketch_dim, sketch_seed, max_full_gb
        self.dtypes = {d: getattr(torch, d) for d in dict.fromkeys(dtypes)}
        self.prev: dict[str, dict[str, torch.Tensor]] = {}
        self.meta: dict[str, Any] = {}
        self.done: set[int] = set()

    # -- what is stored -------------------------------------------------------------------------------------

    def _stored(self, model: torch.nn.Module) -> dict[str, dict[str, torch.Tensor]]:
        """The analyzed weights as the forward pass uses them (merged for adapters), cast to each storage dtype."""
        now = self.adapter.init_weights(model, self.names)
        # copy=True: for a plain fp32 model on the CPU the weights come back as the live parameters themselves
        return {d: {n: w.to(dt, copy=True) for n, w in now.items()} for d, dt in self.dtypes.items()}

    def _snapshot(self, model: torch.nn.Module, step: int) -> None:
        t0 = time.perf_counter()
        delta = self.adapter.delta(model, self.original, self.names).weights
        if self.meta["kind"] == "sketch":
            delta = sketch(delta, self.dim, self.seed)
        path = self.dir / snapshot_name(step)
        save_file({k: v.float().contiguous() for k, v in delta.items()}, str(path),
                  metadata={"step": str(step), "kind": self.meta["kind"], "sketch_dim": str(self.dim),
                            "sketch_seed": str(self.seed)})
        self.meta["snapshots"].append({"step": step, "bytes": path.stat().st_size,
                                       "seconds": round(time.perf_counter() - t0, 4)})
        self.done.add(step)
        self._write_meta()

    def _write_meta(self) -> None:
        (self.dir / "meta.json").write_text(json.dumps(self.meta, indent=1))

    # -- the trainer's events -------------------------------------------------------------------------------

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        from torch.distributed.tensor import DTensor

        if any(isinstance(p, DTensor) or p.numel() == 0 for p in model.parameters()):
            raise ValueError("trajectory.every > 0 needs the whole model on one process: sharded engines (FSDP, "
                             "DeepSpeed ZeRO-3) are not supported; set trajectory.every=0")
        shutil.rmtree(self.dir, ignore_errors=True)  # a rerun's snapshots must not mix with an earlier run's
        self.dir.mkdir(parents=True)
        steps = snapshot_steps(state.max_steps, self.every)
        numel = sum(self.original[n].numel() for n in self.names)
        full_bytes = 4 * numel * len(steps)
        kind = self.sketch_setting
        if kind == "auto":
            kind = full_bytes > self.max_full_gb * GB
        self.meta = {"every": self.every, "kind": "sketch" if kind else "full", "max_steps": state.max_steps,
                     "planned_steps": steps, "full_bytes_planned": full_bytes, "matrices": len(self.names),
                     "entries": numel, "sparsity_dtypes": list(self.dtypes), "sketch_dim": self.dim,
                     "sketch_seed": self.seed, "snapshots": [], "sparsity_seconds": 0.0}
        (self.dir / "sparsity.jsonl").write_text("")
        t0 = time.perf_counter()
        self.prev = self._stored(model)
        self.meta["sparsity_seconds"] += time.perf_counter() - t0
        self._snapshot(model, 0)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        step = state.global_step
        t0 = time.perf_counter()
        now = self._stored(model)
        row: dict[str, Any] = {"step": step}
        for d in self.dtypes:
            per = {n: changed_share(self.prev[d][n], now[d][n]) for n in self.names}
            changed, total = sum(c for c, _ in per.values()), sum(t for _, t in per.values())
            row[d] = {"changed": changed / total, "per_matrix": {n: c / t for n, (c, t) in per.items()}}
        self.prev = now
        with (self.dir / "sparsity.jsonl").open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        self.meta["sparsity_seconds"] += time.perf_counter() - t0
        if (step % self.every == 0 or step == state.max_steps) and step not in self.done:
            self._snapshot(model, step)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.meta["sparsity_seconds"] = round(self.meta["sparsity_seconds"], 4)
        self.meta["steps_recorded"] = sorted(self.done)
        self._write_meta()


def trajectory_callbacks(cfg: Any, adapter: Any, original: dict[str, torch.Tensor], names: list[str],
                         job_dir: Path) -> list[TrainerCallback]:
    """The trajectory recorder when ``trajectory.every > 0`` on the main process; nothing otherwise (a run with
    trajectories off costs what it cost before)."""
    from harness.core.config import block

    tr = block(cfg, "trajectory")
    if int(tr["every"]) <= 0 or not dist.is_main():
        return []
    return [TrajectoryCallback(job_dir / "trajectory", adapter, original, names, int(tr["every"]),
                               [str(cfg.get("store_dtype", "float32")), "bfloat16"], tr["sketch"],
                               int(tr["sketch_dim"]), int(tr["sketch_seed"]), float(tr["max_full_gb"]))]
