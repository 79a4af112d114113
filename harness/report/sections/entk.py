"""Table 5: eNTK rotation (lability) vs eigenvalue rescaling (propensity), per group."""

from __future__ import annotations

import pandas as pd

from harness.report.base import Context, group_row, markdown, section, seed_cell

COLUMNS = (("entk_max_angle_deg", "eNTK largest angle° (rotation)", "{:.2f}"),
           ("entk_mean_angle_deg", "mean angle°", "{:.2f}"),
           ("entk_eig_rel_change", "top-k eigenvalue rel. change (rescaling)", "{:.3f}"),
           ("entk_top_eig_ratio", "top eigenvalue ratio", "{:.3f}"))


@section(60, "table5_entk", "Table 5 — eNTK rotation (lability) vs eigenvalue rescaling (propensity)")
def render(ctx: Context) -> str | None:
    done = ctx.runs[ctx.runs["status"] == "done"]
    if "entk_max_angle_deg" not in done:
        return None
    rows = []
    for values, g in ctx.sweep.groups(done):
        row = group_row(values, g)
        row.update({head: seed_cell(g[col], fmt) if col in g else "–" for col, head, fmt in COLUMNS})
        rows.append(row)
    t = pd.DataFrame(rows)
    ctx.tables["table5_entk"] = t
    return markdown(t)
