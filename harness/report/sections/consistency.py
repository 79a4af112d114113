"""Table 3: cross-run consistency of ΔW (whole model): across seeds (same group) and across objectives
(same seed and every other swept setting equal), beside the random baselines."""

from __future__ import annotations

import pandas as pd

from harness.analysis.pairs import is_pair_study
from harness.report.base import Context, markdown, section, seed_cell


def table3(ctx: Context) -> pd.DataFrame | None:
    sweep = ctx.sweep
    cross, names = sweep_csv(ctx, "cross_run.csv"), sweep_csv(ctx, "geometry_runs.csv")
    if cross is None or cross.empty or names is None:
        return None
    cross = cross[cross["scope"] == "all"]  # whole model; per module type stays in cross_run.csv
    to_run = dict(zip(names["label"].astype(str), names["run"].astype(str)))  # the analyzer labels runs
    values = {frozenset((to_run.get(str(r.run_a)), to_run.get(str(r.run_b)))): r for r in cross.itertuples()}
    metrics = [c for c in cross.columns if c.startswith(("cos", "jaccard"))]
    rows = []
    seeds = "across pairs of one base" if is_pair_study(sweep) else "across seeds"  # pairs: seed = pair index
    for across, label in (("seed", seeds), ("objective", "across objectives")):
        for a, b, shared in sweep.pairs(across):
            r = values.get(frozenset((a, b)))
            if r is None:
                continue
            group = {k: v for k, v in shared.items() if k != "seed"}
            if across == "objective":
                group["objective"] = "sft vs rlvr"
            rows.append({**group, "comparison": label, **{c: getattr(r, c) for c in metrics}})
    if not rows:
        return None
    df = pd.DataFrame(rows)
    keys = [k for k in sweep.keys if k in df] + ["comparison"]
    out = []
    for v, g in df.groupby(keys, sort=True, dropna=False):
        out.append({**dict(zip(keys, v)), "pairs": len(g), **{c: seed_cell(g[c], "{:.3f}") for c in metrics}})
    return pd.DataFrame(out)


def sweep_csv(ctx: Context, name: str) -> pd.DataFrame | None:
    try:
        return pd.read_csv(ctx.sweep.path / name)
    except (OSError, ValueError):
        return None


@section(30, "table3_consistency", "Table 3 — cross-run consistency (whole model; random baselines beside)")
def render(ctx: Context) -> str | None:
    t = table3(ctx)
    if t is None:
        return None
    ctx.tables["table3_consistency"] = t
    return markdown(t)
