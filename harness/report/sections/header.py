"""The report's head: what the tables rest on (model, task, steps, seeds, swept settings)."""

from __future__ import annotations

import pandas as pd

from harness.analysis.pairs import is_pair_study, pair_of
from harness.report.base import Context, markdown, section


def _wall(sweep) -> str:
    wall = sweep.wall_time()
    if wall is None:
        return ""
    span, own = wall
    return (f"- wall time: {span / 60:.1f} min from the first run's start to the last run's end (the runs' own "
            f"times add to {own / 60:.1f} min; the report's own time is not included)\n")


def pair_header(ctx: Context) -> str:
    """A pair study's head: the pairs the tables rest on (released checkpoints, no training)."""
    rows = []
    for r in ctx.sweep.runs:
        p = pair_of(r) or {}
        rows.append({"pair": r.name, "group": p.get("group", "–"), "objective": p.get("objective", "–"),
                     "algorithm": p.get("algorithm") or "–", "dataset": p.get("dataset") or "–",
                     "base": p.get("base", "–"), "tuned": p.get("tuned", "–"),
                     "stored (base → tuned)": f"{p.get('base_dtype', '?')} → {p.get('tuned_dtype', '?')}",
                     "status": r.status, "source": p.get("source") or "–"})
    n_done = sum(r.status == "done" for r in ctx.sweep.runs)
    return (f"# Pair study report: {ctx.sweep.path.name}\n\n"
            f"- {len(rows)} checkpoint pairs ({n_done} analysed): ΔW = W_tuned − W_base of every attention/MLP "
            "projection, read one matrix at a time from the stored checkpoints (nothing trained here)\n"
            "- pairs are grouped by adapter, objective and their `group` key (family); a cell is the mean over "
            "the n pairs of its group ± the half-width of its 95 % t-interval (one pair: the value alone)\n\n"
            + markdown(pd.DataFrame(rows)) + "\n")


@section(0, "header")
def header(ctx: Context) -> str:
    if is_pair_study(ctx.sweep):
        return pair_header(ctx)
    sweep, t = ctx.sweep, ctx.sweep.table
    first = sweep.runs[0]
    steps = sorted({f"{r.identity('objective')}:{r.get('objective.steps')}" for r in sweep.runs})
    seeds = sorted({str(s) for s in t["seed"].dropna()})
    settings = ", ".join(f"`{k}`" for k in sweep.settings) or "none besides adapter and objective"
    return (f"# Sweep report: {sweep.path.name}\n\n"
            f"- model: `{first.identity('model')}` (warm-up: {bool(first.get('model.warmup.enabled'))}), "
            f"task: `{first.identity('task')}` ({first.get('task.n_train')} train / {first.get('task.n_test')} "
            f"held-out prompts)\n"
            f"- steps: {', '.join(steps)}; seeds: {', '.join(seeds)}; runs: {len(t)} "
            f"({int((t['status'] == 'done').sum())} done"
            + (f"; {len(sweep.skipped)} grid cells skipped by `run_objectives`" if sweep.skipped else "") + ")\n"
            + _wall(sweep)
            + f"- runs are grouped by adapter, objective and every swept setting ({settings}); a cell is the mean "
            f"over the n seeds of its group ± the half-width of its 95 % t-interval (one seed: the value alone)\n")
