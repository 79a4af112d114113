"""Table 2: the PEFT comparison of *The Path Not Taken*: each adapter's held-out accuracy relative to full
fine-tuning with the same objective and the same other swept settings."""

from __future__ import annotations

import math

import pandas as pd

from harness.report.base import Context, markdown, section


def table2(ctx: Context) -> pd.DataFrame | None:
    done = ctx.runs[ctx.runs["status"] == "done"]
    if "acc_id" not in done or "full" not in set(done["adapter"]):
        return None
    keys = ctx.sweep.keys
    means = {tuple(str(v[k]) for k in keys): g["acc_id"].mean() for v, g in ctx.sweep.groups(done)}
    other = [k for k in keys if k not in ("adapter", "objective")]
    rows = []
    for values, _ in ctx.sweep.groups(done, ["adapter", *other]):
        if values["adapter"] == "full":
            continue
        row, rel = dict(values), {}
        row["trainable"] = _share(done[done["adapter"] == values["adapter"]])
        for obj in sorted(set(done["objective"])):
            key = {**values, "objective": obj}
            a = means.get(tuple(str(key[k]) for k in keys))
            f = means.get(tuple(str({**key, "adapter": "full"}[k]) for k in keys))
            if a is None or f is None:
                row[f"{obj}: acc / full"] = "–"
                continue
            rel[obj] = a / f if f else math.nan
            row[f"{obj}: acc / full"] = f"{a:.3f} / {f:.3f} = {rel[obj]:.2f}"
        both = {"sft", "rlvr"} <= rel.keys() and all(math.isfinite(x) for x in rel.values())
        row["gap (SFT rel − RLVR rel)"] = f"{rel['sft'] - rel['rlvr']:+.2f}" if both else "–"
        rows.append(row)
    return pd.DataFrame(rows) if rows else None


def _share(runs: pd.DataFrame) -> str:
    """The adapter's trainable parameters as a share of the model's (the same for every seed), e.g. 0.29 %."""
    shares = sorted(set(runs["trainable_share"].dropna())) if "trainable_share" in runs else []
    return " / ".join(f"{100 * s:.3g} %" for s in shares) or "–"


@section(20, "table2_peft_vs_full",
         "Table 2 — PEFT vs full fine-tuning (in-distribution accuracy relative to full)")
def render(ctx: Context) -> str | None:
    t = table2(ctx)
    if t is None:
        return None
    ctx.tables["table2_peft_vs_full"] = t
    return markdown(t)
