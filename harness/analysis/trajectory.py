"""How straight a run's update path is: the analysis of ``<job>/trajectory/`` (written during training by
``trajectory.every``; files only, no training code).

For each analyzed matrix, the snapshots ΔW_{t_0}, …, ΔW_{t_K} (t_0 = 0, t_K = T the last step) form the rows of a
K+1 × mn matrix X. Every figure is computed from its Gram matrix G = X Xᵀ (float64, (K+1)²): the whole model's G is
the sum of the matrices' Grams, so whole-model figures treat the model as one long vector.

- **Rank-1-in-time R²** ``r2_rank1``: the share of the path's energy that the best fit ΔW_t ≈ a(t)·D (any a, any D)
  explains, 1 − min Σ_t‖ΔW_t − a(t)D‖² / Σ_t‖ΔW_t‖² = σ₁²/Σσ² of X (Eckart–Young), i.e. λ_max(G)/tr(G).
  *Uncentred*, on purpose: the path starts at ΔW_0 = 0 (every adapter is checked to be the identity at step 0),
  so the model a(t)·D has no offset; centring would fit a free offset (the mean ΔW) on top, a second direction,
  and measure variation about the mean instead of movement away from the known origin. Its floor is
  1/min(K', mn) (K' snapshots with ΔW ≠ 0: equal energy in orthogonal directions), given as ``r2_rank1_min``.
- **Linear-in-step R²** ``r2_linear``: the same ratio for the fixed fit ΔW_t ≈ (t/T)·ΔW_T (a(t) ∝ t, D = ΔW_T/T):
  1 − Σ_t‖ΔW_t − (t/T)ΔW_T‖² / Σ_t‖ΔW_t‖²; ≤ ``r2_rank1``, and 1 only for a path that moves along one direction
  at a constant rate. It can be negative (a path that goes out and comes back).
- **Rank-1 extrapolation** ``extrap_rel_err``: fit the rank-1-in-time model with a(t) = t on the snapshots with
  0 < t ≤ p·T (p = ``fit_fraction``), ΔW_t ≈ t·β with β = Σ t_i ΔW_{t_i} / Σ t_i² (least squares through the origin
  ΔW_0 = 0), extrapolate to ΔŴ_T = T·β, and report ‖ΔŴ_T − ΔW_T‖_F / ‖ΔW_T‖_F. ΔŴ_T is a fixed linear combination
  of snapshots, so its error is a quadratic form in G, and a path linear in t is extrapolated exactly.
  ``extrapolated.safetensors`` holds ΔŴ_T (full snapshots only: a sketch cannot rebuild a matrix), so that
  W0 + ΔŴ_T can be evaluated beside the trained model.

Also summarized: the per-step PULSE figure of ``sparsity.jsonl`` (share of stored values changed in a step, per
storage dtype; update sparsity = 1 − that share) and what the trajectory cost (``meta.json``).

    python -m harness.analysis.trajectory <job dir> [--fit-fraction 0.5]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from harness.analysis.geometry.sources import matrix_kind, sort_names
from harness.core.store import atomic_savefig, atomic_write_json
from harness.core.weights import snapshot_files
from harness.measure.base import scrub


def snapshot_gram(series: torch.Tensor) -> torch.Tensor:
    """G = X Xᵀ in float64 of a (K+1, …) series of snapshots (each flattened)."""
    x = series.reshape(series.shape[0], -1).double()
    return x @ x.T


def r2_rank1(g: torch.Tensor) -> float:
    """σ₁²/Σσ² of the snapshot matrix from its Gram (NaN when nothing moved)."""
    total = float(torch.trace(g))
    return float(torch.linalg.eigvalsh(g)[-1]) / total if total > 0 else math.nan


def r2_linear(g: torch.Tensor, steps: list[int]) -> float:
    """1 − Σ_t‖ΔW_t − (t/T)ΔW_T‖² / Σ_t‖ΔW_t‖² from the Gram (the last snapshot is step T)."""
    total = float(torch.trace(g))
    if total <= 0:
        return math.nan
    s = torch.tensor(steps, dtype=torch.float64) / steps[-1]
    resid = torch.diagonal(g) - 2 * s * g[:, -1] + s**2 * g[-1, -1]
    return 1.0 - float(resid.sum()) / total


def extrapolation_weights(steps: list[int], fit_fraction: float) -> torch.Tensor:
    """w with ΔŴ_T = Σ_i w_i ΔW_{t_i}: least squares ΔW_t ≈ t·β over 0 < t_i ≤ p·T, evaluated at T."""
    t = torch.tensor(steps, dtype=torch.float64)
    fit = (t > 0) & (t <= fit_fraction * steps[-1])
    if not bool(fit.any()):
        raise ValueError(f"no snapshot with 0 < step <= {fit_fraction} x {steps[-1]} to fit the extrapolation on "
                         f"(steps {steps}); lower trajectory.every or raise trajectory.fit_fraction")
    return torch.where(fit, t * steps[-1] / float((t[fit] ** 2).sum()), torch.zeros_like(t))


def extrapolation_error(g: torch.Tensor, w: torch.Tensor) -> float:
    """‖Σ w_i X_i − X_T‖ / ‖X_T‖ from the Gram (NaN when ΔW_T = 0)."""
    e = w.clone()
    e[-1] -= 1.0
    last = float(g[-1, -1])
    return math.sqrt(max(float(e @ g @ e), 0.0) / last) if last > 0 else math.nan


def figures(g: torch.Tensor, steps: list[int], w: torch.Tensor, entries: int) -> dict[str, float]:
    """The per-matrix (or whole-model) figures from one Gram."""
    moving = int((torch.diagonal(g) > 0).sum())
    return {"r2_rank1": r2_rank1(g), "r2_linear": r2_linear(g, steps), "extrap_rel_err": extrapolation_error(g, w),
            "r2_rank1_min": 1.0 / min(moving, entries) if moving else math.nan,
            "norm_final": math.sqrt(max(float(g[-1, -1]), 0.0))}


def pulse(traj_dir: Path) -> dict[str, Any]:
    """Per storage dtype, the whole-model share of stored values changed at each step (``sparsity.jsonl``) and its
    mean; per matrix, the mean share over the steps."""
    path = traj_dir / "sparsity.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []
    out: dict[str, Any] = {}
    for d in [k for k in (rows[0] if rows else {}) if k != "step"]:
        changed = [r[d]["changed"] for r in rows]
        per = {n: float(np.mean([r[d]["per_matrix"][n] for r in rows])) for n in rows[0][d]["per_matrix"]}
        out[d] = {"steps": [r["step"] for r in rows], "changed": changed, "mean_changed": float(np.mean(changed)),
                  "mean_sparsity": 1.0 - float(np.mean(changed)), "per_matrix_mean_changed": per}
    return out


def analyze_trajectory(job_dir: Path | str, fit_fraction: float = 0.5, plot: bool = True) -> dict[str, Any]:
    """Read ``<job>/trajectory/``, write ``trajectory_summary.json``, ``trajectory.png`` and (full snapshots)
    ``trajectory/extrapolated.safetensors``; return the summary."""
    job_dir = Path(job_dir)
    traj = job_dir / "trajectory"
    files = snapshot_files(traj)
    if len(files) < 2 or 0 not in files:
        raise ValueError(f"{traj}: needs the step-0 snapshot and at least one more, found steps {list(files)}")
    steps = list(files)
    meta = json.loads((traj / "meta.json").read_text()) if (traj / "meta.json").exists() else {}
    try:
        w = extrapolation_weights(steps, fit_fraction)
    except ValueError as exc:  # R² still stands; the extrapolation is reported as absent, with the reason
        w, no_fit = torch.full((len(steps),), math.nan, dtype=torch.float64), str(exc)
    else:
        no_fit = None
    handles = [safe_open(str(p), framework="pt") for p in files.values()]
    kind = handles[-1].metadata().get("kind", "full") if handles[-1].metadata() else "full"
    names = sort_names(handles[-1].keys())
    per_matrix: dict[str, dict[str, Any]] = {}
    whole = torch.zeros(len(steps), len(steps), dtype=torch.float64)
    extrapolated: dict[str, torch.Tensor] = {}
    entries = 0
    for name in names:
        series = torch.stack([h.get_tensor(name) for h in handles])
        g = snapshot_gram(series)
        whole += g
        n = series[0].numel()
        entries += n
        layer, module = matrix_kind(name)
        per_matrix[name] = {"layer": layer, "module": module, **figures(g, steps, w, n)}
        if kind == "full" and no_fit is None:
            extrapolated[name] = torch.einsum("k,k...->...", w, series.double()).float().contiguous()
    (traj / "extrapolated.safetensors").unlink(missing_ok=True)  # never an earlier analysis's
    if extrapolated:
        save_file(extrapolated, str(traj / "extrapolated.safetensors"),
                  metadata={"fit_fraction": str(fit_fraction), "step": str(steps[-1]),
                            "fit_steps": json.dumps([s for s, x in zip(steps, w) if x > 0])})
    storage = sum(s["bytes"] for s in meta.get("snapshots", [])) or sum(p.stat().st_size for p in files.values())
    seconds = [s["seconds"] for s in meta.get("snapshots", [])]
    summary = {
        "kind": kind, "snapshots": len(steps), "steps": steps, "fit_fraction": fit_fraction,
        "fit_steps": [s for s, x in zip(steps, w) if x > 0], "storage_bytes": storage,
        "storage_bytes_per_snapshot": storage / len(steps),
        "seconds_per_snapshot": float(np.mean(seconds)) if seconds else None,
        "sparsity_seconds_per_step": (meta["sparsity_seconds"] / max(1, meta.get("max_steps", 1))
                                      if "sparsity_seconds" in meta else None),
        "whole": figures(whole, steps, w, entries), "pulse": pulse(traj), "per_matrix": per_matrix,
        "extrapolated": "trajectory/extrapolated.safetensors" if extrapolated else None, "no_fit": no_fit,
        "definitions": {"r2_rank1": "sigma_1^2 / sum sigma^2 of the uncentred (snapshots x entries) matrix",
                        "r2_linear": "1 - sum_t |dW_t - (t/T) dW_T|^2 / sum_t |dW_t|^2",
                        "extrap_rel_err": "|T*beta - dW_T| / |dW_T|, beta = least squares dW_t ~ t*beta over "
                                          "0 < t <= fit_fraction*T",
                        "pulse changed": "share of entries whose value cast to the dtype changed in the step"},
    }
    atomic_write_json(job_dir / "trajectory_summary.json", scrub(summary))
    if plot:
        plot_trajectory(summary, job_dir / "trajectory.png")
    return summary


def plot_trajectory(summary: dict[str, Any], path: Path) -> Path:
    """Left: share of stored values changed per step (whole model, one line per dtype). Right: per layer, the
    mean over its matrices of the rank-1 R² (solid) and the linear-in-step R² (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    for d, p in summary["pulse"].items():
        ax1.plot(p["steps"], p["changed"], marker="o", ms=3, label=d)
    if summary["pulse"]:
        ax1.legend()
    ax1.set(xlabel="optimizer step", ylabel="share of stored values changed in the step",
            title="PULSE: per-step update density (1 − sparsity)", ylim=(0, 1.02))
    layers: dict[int, list[dict]] = {}
    for row in summary["per_matrix"].values():
        layers.setdefault(row["layer"], []).append(row)
    xs = sorted(layers)
    for key, style in (("r2_rank1", "-"), ("r2_linear", "--")):
        ys = [_mean([r[key] for r in layers[x]]) for x in xs]
        ax2.plot(xs, ys, style, marker="o", ms=3, label=key)
    ax2.set(xlabel="layer", ylabel="R² (mean over the layer's matrices)", ylim=(min(0, ax2.get_ylim()[0]), 1.02),
            title=f"straightness of ΔW_t ({summary['snapshots']} snapshots, {summary['kind']})")
    ax2.legend()
    atomic_savefig(fig, path, dpi=100)
    plt.close(fig)
    return path


def _mean(values: list[float | None]) -> float:
    """Mean of the values that are numbers (NaN when none)."""
    ok = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(ok)) if ok else math.nan


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("job_dir", type=Path)
    ap.add_argument("--fit-fraction", type=float, default=0.5)
    args = ap.parse_args(argv)
    s = analyze_trajectory(args.job_dir, args.fit_fraction)
    w = s["whole"]
    print(f"{s['snapshots']} snapshots ({s['kind']}, {s['storage_bytes'] / 1e6:.1f} MB): rank-1 R² {w['r2_rank1']:.4f}, "
          f"linear R² {w['r2_linear']:.4f}, extrapolation error {w['extrap_rel_err']:.4f} "
          f"(fit on steps {s['fit_steps']}) -> {args.job_dir / 'trajectory_summary.json'}")


if __name__ == "__main__":
    main()
