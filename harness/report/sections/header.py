"""The report's head: what the tables rest on (model, task, steps, seeds, swept settings)."""

from __future__ import annotations

from harness.report.base import Context, section


def _wall(sweep) -> str:
    wall = sweep.wall_time()
    if wall is None:
        return ""
    span, own = wall
    return (f"- wall time: {span / 60:.1f} min from the first run's start to the last run's end (the runs' own "
            f"times add to {own / 60:.1f} min; the report's own time is not included)\n")


@section(0, "header")
def header(ctx: Context) -> str:
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
