"""Update trajectories: how straight each run's path ΔW_t is, and how many bf16-stored weights a step changes
(``trajectory_summary.json``, ``trajectory_eval.json``; ``trajectory.every>0``, :mod:`harness.analysis.trajectory`).

Per condition: the whole-model rank-1-in-time R², linear-in-step R², the extrapolation error, the extrapolated
model's held-out accuracy minus the trained one's, and the mean per-step share of bf16-stored values changed (PULSE),
mean over seeds ± 95 % t half-width; one PNG of that share per step, one line per run.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.analysis.surgery_values import BF16
from harness.report.base import Context, group_row, markdown, numeric, section, seed_cell
from harness.report.sections.surgery import runs_table

COLUMNS = (("traj:r2_rank1", "rank-1-in-time R²", "{:.3f}"), ("traj:r2_linear", "linear-in-step R²", "{:.3f}"),
           ("traj:extrap_rel_err", "extrapolation error ‖ΔŴ_T − ΔW_T‖/‖ΔW_T‖", "{:.3g}"),
           ("traj:extrap_delta", "held-out acc: extrapolated − trained", "{:+.3f}"),
           ("traj:pulse_bf16_changed", "bf16 values changed per step (mean share)", "{:.3g}"))


def trajectory_table(ctx: Context) -> pd.DataFrame | None:
    """One row per condition with a trajectory (see the module doc); None when no run has one."""
    done = runs_table(ctx)
    if "traj:r2_rank1" not in done or not numeric(done["traj:r2_rank1"]).size:
        return None
    rows = []
    for values, g in ctx.sweep.groups(done):
        g = g[pd.to_numeric(g["traj:r2_rank1"], errors="coerce").notna()]
        if g.empty:
            continue
        rows.append({**group_row(values, g), **{head: seed_cell(g[col], fmt) if col in g else "–"
                                                for col, head, fmt in COLUMNS}})
    return pd.DataFrame(rows) if rows else None


def plot_pulse(ctx: Context, runs: list[str], out: Path) -> Path | None:
    """Share of bf16-stored values changed at each optimizer step, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from harness.core.store import atomic_savefig

    fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    drawn = 0
    for name in runs:
        p = ((ctx.sweep.run(name).json("trajectory_summary.json") or {}).get("pulse") or {}).get(BF16) or {}
        if p.get("steps"):
            ax.plot(p["steps"], p["changed"], lw=1.2, label=name)
            drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set_ylim(bottom=0)
    ax.set(xlabel="optimizer step", ylabel="share of bf16-stored values changed in the step",
           title="PULSE: per-step update density in bf16 (sparsity = 1 − share)")
    ax.legend(fontsize=6)
    atomic_savefig(fig, out, dpi=100)
    plt.close(fig)
    return out


@section(67, "trajectory", "Update trajectories — straightness of ΔW_t and per-step bf16 sparsity")
def render(ctx: Context) -> str | None:
    table = trajectory_table(ctx)
    if table is None:
        return None
    ctx.tables["trajectory"] = table
    done = runs_table(ctx)
    fig = plot_pulse(ctx, list(done["run"]), ctx.out_dir / "trajectory_pulse.png")
    if fig:
        ctx.figures.append(fig)
    return ("Whole model, per run from its snapshots ΔW_0 … ΔW_T: rank-1-in-time R² (share of the path's energy in "
            "one direction), linear-in-step R² (fit ΔW_t ≈ (t/T)·ΔW_T), the error of extrapolating a fit on the early "
            "snapshots to step T, the extrapolated model's held-out accuracy minus the trained one's, and the mean "
            "per-step share of bf16-stored values that changed (docs/metrics.md). Cells: mean over seeds ± 95 % t "
            "half-width.\n\n" + markdown(table))
