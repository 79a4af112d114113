"""Did the runs learn? Held-out accuracy against the base on the same prompts, and the training signal.

Per group: the in-distribution and OOD accuracy change with its 95 % interval — over seeds (t-interval of the
per-seed changes) when the group has several seeds, else the paired bootstrap of that one run against the
base on the same prompts (``eval.json``'s ``delta_ci``); the change of the training curve from its first to
its last quarter of steps (RLVR: mean reward; SFT: loss), with a Welch interval for one run or a t-interval
over seeds; and, for RLVR, the share of GRPO groups whose completions all scored alike (no gradient).
A figure whose interval includes 0 is marked as not distinguishable at this scale.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as sps

from harness.analysis.pairs import is_pair_study
from harness.core.stats import distinguishable, seed_mean
from harness.report.base import NOT_DISTINGUISHABLE, Context, group_row, markdown, numeric, section


def quarter_change(y: np.ndarray) -> tuple[float, float, float]:
    """Mean of the last quarter of steps minus the mean of the first quarter, and its Welch 95 % interval."""
    y = y[np.isfinite(y)]
    q = len(y) // 4
    if q < 2:
        return math.nan, math.nan, math.nan
    first, last = y[:q], y[-q:]
    est = float(last.mean() - first.mean())
    if np.var(first) + np.var(last) == 0:  # a flat curve: no spread, the change is exact
        return est, est, est
    ci = sps.ttest_ind(last, first, equal_var=False).confidence_interval(0.95)
    return est, float(ci.low), float(ci.high)


def per_run(ctx: Context) -> pd.DataFrame:
    rows = []
    for row in ctx.sweep.done.to_dict("records"):
        run = ctx.sweep.run(row["run"])
        out = dict(row)
        for split in ("id", "ood"):
            tasks = [t for t in ((run.eval() or {}).get("tasks") or {}).values() if t.get("split") == split]
            if tasks:  # several OOD tasks: their mean change; one run's interval only for a single task
                out[f"{split}_base"] = float(np.mean([t.get("base_accuracy") or 0 for t in tasks]))
                out[f"{split}_delta"] = float(np.mean([t.get("delta") or 0 for t in tasks]))
                ci = tasks[0].get("delta_ci") if len(tasks) == 1 else None
                out[f"{split}_lo"], out[f"{split}_hi"] = ci if ci else (math.nan, math.nan)
        log = run.train_log()
        if log is not None:
            col = "reward" if "reward" in log else "loss" if "loss" in log else None
            if col:
                out["curve"] = col
                out["curve_delta"], out["curve_lo"], out["curve_hi"] = quarter_change(log[col].to_numpy(float))
            if "frac_reward_zero_std" in log:
                out["zero_adv"] = float(log["frac_reward_zero_std"].mean())
        rows.append(out)
    return pd.DataFrame(rows)


def interval_cell(g: pd.DataFrame, col: str, fmt: str = "{:+.3f}") -> str:
    """``+0.090 [+0.040, +0.140]``, over seeds when there are several, else the run's own interval; marked
    n.d. when the interval includes 0."""
    if col not in g:
        return "–"
    s = seed_mean(numeric(g[col]))
    if s.n == 0:
        return "–"
    lo, hi = (s.lo, s.hi) if s.n > 1 else (g[col.replace("delta", "lo")].iloc[0], g[col.replace("delta", "hi")].iloc[0])
    text = fmt.format(s.estimate)
    if lo is not None and not (isinstance(lo, float) and math.isnan(lo)):
        text += f" [{fmt.format(lo)}, {fmt.format(hi)}]"
    return text if distinguishable(lo, hi) else f"{text} {NOT_DISTINGUISHABLE}"


def learning_table(ctx: Context) -> pd.DataFrame | None:
    if is_pair_study(ctx.sweep):  # released checkpoints: no training log, no evaluation against the base
        return None
    runs = per_run(ctx)
    if runs.empty:
        return None
    out = []
    for values, g in ctx.sweep.groups(runs):
        row = group_row(values, g)
        row["ID base"] = f"{g['id_base'].mean():.3f}" if "id_base" in g and g["id_base"].notna().any() else "–"
        row["ID change [95% CI]"] = interval_cell(g, "id_delta")
        row["OOD change [95% CI]"] = interval_cell(g, "ood_delta")
        curve = g["curve"].dropna().iloc[0] if "curve" in g and g["curve"].notna().any() else None
        row["curve"] = {"reward": "reward", "loss": "loss"}.get(curve, "–")
        row["last − first quarter [95% CI]"] = interval_cell(g, "curve_delta", "{:+.3g}")
        row["zero-advantage groups"] = (f"{g['zero_adv'].mean():.0%}" if "zero_adv" in g and g["zero_adv"].notna().any()
                                        else "–")
        out.append(row)
    return pd.DataFrame(out)


@section(8, "learning", "Learning — held-out accuracy vs the base, and the training signal")
def render(ctx: Context) -> str | None:
    t = learning_table(ctx)
    if t is None:
        return None
    ctx.tables["learning"] = t
    return ("Accuracy change vs the base on the same held-out prompts: mean over the n seeds with its 95 % "
            "t-interval, or for one seed the paired bootstrap of that run against the base. Curve: last minus "
            "first quarter of the steps (RLVR mean reward, higher is better; SFT loss, lower is better), Welch "
            "interval for one run. Zero-advantage groups: GRPO groups whose completions all scored alike (no "
            f"gradient). **{NOT_DISTINGUISHABLE}** = the interval includes 0 (or none could be given): not "
            "distinguishable from no change at this scale.\n\n" + markdown(t))
