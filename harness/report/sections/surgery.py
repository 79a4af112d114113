"""ΔW surgery: which part of each run's update carries its gain (``surgery.json``, ``surgery.enabled=true``).

Per condition (:meth:`Sweep.groups`) and edit (named by :func:`harness.analysis.surgery_values.edit_key`): the
fraction of the held-out gain and of the OOD change the edited model W0 + T(ΔW) keeps, beside the norm-matched
random null's, and ‖T(ΔW)‖/‖ΔW‖, each the mean over seeds ± 95 % t half-width (:func:`seed_cell`); *undefined*
counts the runs whose change is not told apart from 0 (no fraction to keep). One PNG per edit family (rank,
subspace, mask, layers-module, restore): the fraction kept against the edit's relative norm, the null beside it.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from harness.analysis.surgery_values import FAMILY, edit_keys
from harness.core.stats import seed_mean
from harness.report.base import Context, group_row, markdown, numeric, section, seed_cell


def runs_table(ctx: Context) -> pd.DataFrame:
    """The done runs with their per-run values (``ctx.runs``, computed here when the caller has not)."""
    if ctx.runs is None:
        from harness.analysis.sweep import per_run

        ctx.runs = per_run(ctx.sweep)
    return ctx.runs[ctx.runs["status"] == "done"] if len(ctx.runs) else ctx.runs


def surgery_table(ctx: Context) -> pd.DataFrame | None:
    """One row per condition and edit (see the module doc); None when no run has ``surgery.json``."""
    done = runs_table(ctx)
    keys = edit_keys(done.columns)
    if not keys:
        return None
    rows = []
    for values, g in ctx.sweep.groups(done):
        for key in keys:
            p = f"surg:{key}:"
            e = g[g[p + "edit"].notna()]
            if e.empty:
                continue
            undefined = int(sum(not math.isfinite(v) for v in pd.to_numeric(e[p + "kept_id"], errors="coerce")))
            rows.append({**group_row(values, e), "edit": key, "entry": "/".join(sorted(set(map(str, e[p + "entry"])))),
                         "family": FAMILY.get(str(e[p + "edit"].iloc[0]), str(e[p + "edit"].iloc[0])),
                         "‖T(ΔW)‖/‖ΔW‖": seed_cell(e[p + "norm_ratio"]),
                         "held-out gain kept": seed_cell(e[p + "kept_id"]),
                         "random null, held-out": seed_cell(e[p + "null_kept_id"]),
                         "OOD change kept": seed_cell(e[p + "kept_ood"]),
                         "random null, OOD": seed_cell(e[p + "null_kept_ood"]),
                         "undefined (held-out)": undefined})
    return pd.DataFrame(rows) if rows else None


def family_points(ctx: Context) -> dict[str, list[dict]]:
    """Per edit family, one point per condition and edit: seed means (and t-intervals) of the relative norm,
    the held-out fraction kept and the null's."""
    done = runs_table(ctx)
    out: dict[str, list[dict]] = {}
    for values, g in ctx.sweep.groups(done):
        for key in edit_keys(done.columns):
            p = f"surg:{key}:"
            e = g[g[p + "edit"].notna()]
            if e.empty:
                continue
            kept, null = seed_mean(numeric(e[p + "kept_id"])), seed_mean(numeric(e[p + "null_kept_id"]))
            norm = seed_mean(numeric(e[p + "norm_ratio"]))
            if kept.n == 0 or norm.n == 0:
                continue
            out.setdefault(FAMILY.get(str(e[p + "edit"].iloc[0]), str(e[p + "edit"].iloc[0])), []).append(
                {"condition": ctx.sweep.condition(values), "edit": key, "norm": norm.estimate, "kept": kept,
                 "null": null})
    return out


def plot_family(family: str, points: list[dict], out: Path) -> Path:
    """Fraction of the held-out gain kept vs ‖T(ΔW)‖/‖ΔW‖: filled markers the edit, hollow its random null
    (bars: 95 % t over seeds), one colour per condition; 1 = the whole gain, 0 = the base."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from harness.core.store import atomic_savefig

    fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    conds = list(dict.fromkeys(pt["condition"] for pt in points))
    for pt in points:
        c = colors[conds.index(pt["condition"]) % len(colors)]
        for s, fill, label in ((pt["kept"], c, pt["condition"]), (pt["null"], "none", None)):
            if s.n == 0:
                continue
            err = [[s.estimate - s.lo], [s.hi - s.estimate]] if math.isfinite(s.lo) else None
            ax.errorbar([pt["norm"]], [s.estimate], yerr=err, fmt="o", color=c, mfc=fill, ms=6, capsize=3,
                        label=label)
        ax.annotate(pt["edit"], (pt["norm"], pt["kept"].estimate), fontsize=6, xytext=(4, 3),
                    textcoords="offset points")
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.axhline(0.0, color="grey", lw=0.8, ls=":")
    handles, labels = ax.get_legend_handles_labels()
    seen = dict(zip(labels, handles))
    ax.legend(seen.values(), seen.keys(), fontsize=7)
    ax.set(xlabel="‖T(ΔW)‖_F / ‖ΔW‖_F", ylabel="fraction of held-out gain kept",
           title=f"surgery, {family} edits (hollow: norm-matched random null)")
    atomic_savefig(fig, out, dpi=100)
    plt.close(fig)
    return out


@section(66, "surgery", "ΔW surgery — which part of the update carries the gain")
def render(ctx: Context) -> str | None:
    table = surgery_table(ctx)
    if table is None:
        return None
    ctx.tables["surgery"] = table
    for family, points in family_points(ctx).items():
        ctx.figures.append(plot_family(family, points, ctx.out_dir / f"surgery_{family}.png"))
    return ("Each edit T evaluates W0 + T(ΔW) on eval's tasks; *kept* = (acc_edit − acc_base)/(acc_run − acc_base) "
            "per task (mean over the split's tasks), defined only when the run's change has a paired-bootstrap "
            "95 % interval excluding 0 (*undefined* counts the runs where it does not). The random null is W0 + R "
            "with R Gaussian of T(ΔW)'s norm, matrix by matrix. Cells: mean over seeds ± 95 % t half-width.\n\n"
            + markdown(table))
