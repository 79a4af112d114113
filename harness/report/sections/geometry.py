"""Table 1: update geometry and accuracy per group (adapter × objective × swept settings)."""

from __future__ import annotations

import pandas as pd

from harness.report.base import Context, group_row, markdown, section, seed_cell

# (whole-model key of geometry_summary.json at the analyzer's first k, header)
COLUMNS = (("drift", "spectral drift"), ("max_angle_{k}", "largest angle° (k={kk})"),
           ("sparsity_bf16", "sparsity bf16"), ("sparsity_abs", "sparsity |Δ|≤1e-5"),
           ("eff_rank", "ΔW eff. rank"), ("energy_{k}", "ΔW energy in W0 top-k"),
           ("energy_base_{k}", "random baseline"))


def first_k(runs: pd.DataFrame) -> str:
    ks = sorted({c.split("geo:energy_base_")[1] for c in runs.columns if c.startswith("geo:energy_base_")})
    return "k16" if "k16" in ks else (ks[0] if ks else "k16")


def table1(ctx: Context) -> pd.DataFrame:
    done = ctx.runs[ctx.runs["status"] == "done"]
    k = first_k(done)
    out = []
    for values, g in ctx.sweep.groups(done):
        row = group_row(values, g)
        for src, head in COLUMNS:
            col = "geo:" + src.format(k=k)
            row[head.format(kk=k[1:])] = seed_cell(g[col]) if col in g else "–"
        row["ID accuracy gain"] = seed_cell(g["gain_id"], "{:+.3f}") if "gain_id" in g else "–"
        row["OOD change"] = seed_cell(g["change_ood"], "{:+.3f}") if "change_ood" in g else "–"
        out.append(row)
    return pd.DataFrame(out)


@section(10, "table1_geometry_accuracy", "Table 1 — update geometry and accuracy per adapter × objective")
def render(ctx: Context) -> str | None:
    t = table1(ctx)
    if t.empty:
        return None
    ctx.tables["table1_geometry_accuracy"] = t
    return markdown(t)
