"""Downstream accuracy (lm-eval) per group and task: accuracy and its change vs the base, each the mean over
seeds with its 95 % interval; grouped like Table 1, so the two agree."""

from __future__ import annotations

import pandas as pd

from harness.report.base import Context, markdown, section, seed_cell


def task_order(names) -> list[str]:
    """id first, then the ood tasks, then lm-eval tasks by name."""
    return sorted(set(names), key=lambda n: (0 if n == "id" else 1 if n.startswith("ood_") else 2, n))


def per_task(ctx: Context) -> pd.DataFrame:
    """One row per (done run, task): accuracy, base accuracy, Δ, n."""
    rows = []
    done = ctx.sweep.done
    for row in done.to_dict("records"):
        ev = ctx.sweep.run(row["run"]).eval() or {}
        for name, t in ev.get("tasks", {}).items():
            rows.append({**row, "task": name, "split": t.get("split"), "n_prompts": t.get("n"),
                         "accuracy": t.get("accuracy"), "base": t.get("base_accuracy"), "delta": t.get("delta")})
    return pd.DataFrame(rows)


def accuracy_table(ctx: Context) -> pd.DataFrame | None:
    df = per_task(ctx)
    if df.empty:
        return None
    tasks = task_order(df["task"])
    n = df.groupby("task")["n_prompts"].max()
    base = df.groupby("task")["base"].mean()
    out = [{**{k: "base" if k == "adapter" else "–" for k in ctx.sweep.keys}, "n": "–",
            **{f"{t} (n={int(n[t])})": f"{base[t]:.3f}" for t in tasks}}]
    for values, g in ctx.sweep.groups(df):
        row = {**values, "n": int(g["run"].nunique())}
        for t in tasks:
            gt = g[g["task"] == t]
            row[f"{t} (n={int(n[t])})"] = (f"{seed_cell(gt['accuracy'], '{:.3f}')} "
                                           f"(Δ {seed_cell(gt['delta'], '{:+.3f}')})") if len(gt) else "–"
        out.append(row)
    return pd.DataFrame(out)


@section(40, "accuracy", "Downstream accuracy (lm-eval)", console=True)
def render(ctx: Context) -> str | None:
    t = accuracy_table(ctx)
    if t is None:
        return None
    ctx.tables["accuracy"] = t
    return ("Accuracy (Δ vs the base, evaluated once per sweep) per group: mean over seeds ± 95 % half-width. "
            "`id`: held-out split of the trained task; `ood_*`: tasks not trained on (forgetting); others: "
            "lm-eval tasks by name.\n\n" + markdown(t))
