"""pass@k curves (base vs run, per difficulty group, with the crossover k) and the KL between base and run.

Reads each run's ``passk.json`` and ``kl.json`` (``passk.enabled``, ``kl.enabled``; see :mod:`harness.measure.passk`,
:mod:`harness.measure.kl`). Per group of runs (adapter, objective, swept settings) and difficulty group: the base's and
the run's pass@1 and pass@n as the mean over seeds ± the half-width of its 95 % t-interval, and the crossover k
read off the seed-mean curves (and per seed). :func:`add_run_values` puts the per-run figures into ``ctx.runs``
(``pass1_run``, ``passn_run``, ``crossover_k``, ``kl_forward``, ``kl_reverse``, ...) for other sections.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from harness.core.stats import seed_mean
from harness.measure.passk import ALL, crossover_k
from harness.report.base import Context, group_row, markdown, numeric, section, seed_cell

PASSK_COLUMNS = ("pass1_base", "pass1_run", "passn_base", "passn_run", "crossover_k")
KL_COLUMNS = ("kl_forward", "kl_reverse", "kl_forward_per_token", "kl_reverse_per_token", "kl_forward_se",
              "kl_reverse_se")


def add_run_values(ctx: Context) -> pd.DataFrame:
    """Add the per-run pass@k and KL figures to ``ctx.runs`` (idempotent; NaN where a run has no file)."""
    runs = ctx.runs
    if runs is None or "kl_forward" in runs:
        return runs
    values: dict[str, list] = {c: [] for c in (*PASSK_COLUMNS, "passk_n", *KL_COLUMNS, "kl_samples_from")}
    for name in runs["run"]:
        run = ctx.sweep.run(name)
        pk, kl = run.json("passk.json") or {}, run.json("kl.json") or {}
        for c in PASSK_COLUMNS:
            values[c].append(_num(pk.get(c)))
        values["passk_n"].append(_num((pk.get("settings") or {}).get("n")))
        for c in KL_COLUMNS:
            values[c].append(_num(kl.get(c)))
        values["kl_samples_from"].append(kl.get("samples_from"))
    for c, v in values.items():
        runs[c] = v
    return runs


def _num(v) -> float:
    try:
        return math.nan if v is None else float(v)
    except (TypeError, ValueError):
        return math.nan


def _curves(ctx: Context, rows: pd.DataFrame) -> dict[str, dict]:
    """Per difficulty group: base curves (by base key), run curves (one per seed), seeds and n."""
    out: dict[str, dict] = {}
    for r in rows.to_dict("records"):
        pk = ctx.sweep.run(r["run"]).json("passk.json")
        if not pk:
            continue
        for g, d in (pk.get("groups") or {}).items():
            e = out.setdefault(g, {"base": {}, "run": [], "seeds": [], "prompts": d.get("n_prompts"),
                                   "n": len(d["run"])})
            e["base"][pk.get("base_key")] = np.asarray(d["base"], dtype=float)
            e["run"].append(np.asarray(d["run"], dtype=float))
            e["seeds"].append(r.get("seed"))
    return out


def _ordered(groups) -> list[str]:
    return sorted(groups, key=lambda g: (g != ALL, g))


def passk_table(ctx: Context) -> tuple[pd.DataFrame | None, list[tuple[str, dict]]]:
    """The pass@k table, and per condition the curves the figure draws."""
    done = ctx.runs[ctx.runs["status"] == "done"]
    rows, drawn = [], []
    for values, g in ctx.sweep.groups(done):
        curves = _curves(ctx, g)
        if not curves:
            continue
        drawn.append((ctx.sweep.condition(values), curves))
        for dg in _ordered(curves):
            c = curves[dg]
            if len({len(x) for x in c["run"]} | {len(x) for x in c["base"].values()}) != 1:
                continue  # runs of one group with different n (passk.n not swept but changed): not pooled
            base = np.mean(list(c["base"].values()), axis=0)
            run = np.mean(c["run"], axis=0)
            n = c["n"]
            per_seed = [crossover_k(b, x) for b, x in zip([base] * len(c["run"]), c["run"])]
            rows.append({**group_row(values, g), "difficulty": dg, "prompts": c["prompts"], "n samples": n,
                         "base pass@1": f"{base[0]:.3f}", "run pass@1": seed_cell([x[0] for x in c["run"]]),
                         "base pass@n": f"{base[-1]:.3f}", "run pass@n": seed_cell([x[-1] for x in c["run"]]),
                         "crossover k": _k(crossover_k(base, run)),
                         "crossover k per seed": " ".join(_k(k) for k in per_seed)})
    return (pd.DataFrame(rows) if rows else None), drawn


def _k(k: int | None) -> str:
    return "none" if k is None else str(k)


def plot_passk(drawn: list[tuple[str, dict]], out: Path) -> Path | None:
    """Base vs each condition's mean pass@k curve (band: 95 % t-interval over seeds), one panel per difficulty
    group, log-x k axis; the crossover k marked on the run's curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    from harness.core.store import atomic_savefig

    groups = _ordered({g for _, curves in drawn for g in curves})
    if not groups:
        return None
    cols = min(3, len(groups))
    nrows = math.ceil(len(groups) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(max(6.0, 4.6 * cols), 3.8 * nrows), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, dg in zip(axes.flat, groups):
        bases: dict[str, np.ndarray] = {}
        for i, (label, curves) in enumerate(drawn):
            c = curves.get(dg)
            if not c or len({len(x) for x in c["run"]}) != 1:
                continue
            bases.update(c["base"])
            k = np.arange(1, c["n"] + 1)
            color = colors[i % len(colors)]
            stats = [seed_mean([x[j] for x in c["run"]]) for j in range(c["n"])]
            mean = np.array([s.estimate for s in stats])
            ax.plot(k, mean, color=color, lw=1.6, label=f"{label} (n={len(c['run'])})")
            if len(c["run"]) > 1:
                lo, hi = np.clip([s.lo for s in stats], 0, 1), np.clip([s.hi for s in stats], 0, 1)
                ax.fill_between(k, lo, hi, color=color, alpha=0.15, lw=0)
            x = crossover_k(np.mean(list(c["base"].values()), axis=0), mean)
            if x is not None:
                ax.plot([x], [mean[x - 1]], "o", color=color, ms=6, mfc="none")
                ax.axvline(x, color=color, ls=":", lw=1)
        for j, (key, b) in enumerate(sorted(bases.items(), key=lambda kv: str(kv[0]))):
            ax.plot(np.arange(1, len(b) + 1), b, color="black", ls=("--", "-.", ":")[j % 3], lw=1.4,
                    label="base" if len(bases) == 1 else f"base {str(key)[:6]}")
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.set(title=f"difficulty: {dg}", xlabel="k (log scale)", ylabel="pass@k", ylim=(-0.02, 1.02))
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(groups):]:
        ax.axis("off")
    fig.suptitle("unbiased pass@k, held-out prompts (band: 95 % t over seeds)\n"
                 "circle + dotted line: crossover k (base ≥ run)", fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, out)
    plt.close(fig)
    return out


@section(62, "passk", "pass@k — does the base catch up at large k?")
def render_passk(ctx: Context) -> str | None:
    add_run_values(ctx)
    table, drawn = passk_table(ctx)
    if table is None:
        return None
    ctx.tables["passk"] = table
    fig = plot_passk(drawn, ctx.out_dir / "passk_curves.png")
    if fig:
        ctx.figures.append(fig)
    return ("Unbiased pass@k = 1 − C(n−c, k)/C(n, k) from n samples per held-out prompt (c correct), averaged "
            "over the prompts of each difficulty group; run columns: mean over seeds ± 95 % t half-width. "
            "Crossover k: the smallest k where the base's pass@k ≥ the run's (on the seed-mean curves; "
            "`none`: the run stays ahead at every k ≤ n; `1`: the run is not ahead even at k = 1).\n\n"
            + markdown(table))


def kl_table(ctx: Context) -> pd.DataFrame | None:
    done = ctx.runs[ctx.runs["status"] == "done"]
    if "kl_forward" not in done or not numeric(done["kl_forward"]).size:
        return None
    rows = []
    for values, g in ctx.sweep.groups(done):
        if not numeric(g["kl_forward"]).size:
            continue
        row = group_row(values, g)
        row["samples from"] = "/".join(sorted({str(s) for s in g["kl_samples_from"] if isinstance(s, str)}))
        for col, head, fmt in (("kl_forward", "KL(base‖run) per sequence", "{:.4g}"),
                               ("kl_reverse", "KL(run‖base) per sequence", "{:.4g}"),
                               ("kl_forward_per_token", "KL(base‖run) per token", "{:.3g}"),
                               ("kl_reverse_per_token", "KL(run‖base) per token", "{:.3g}")):
            row[head] = _kl_cell(g, col, fmt)
        rows.append(row)
    return pd.DataFrame(rows)


def _kl_cell(g: pd.DataFrame, col: str, fmt: str) -> str:
    """Mean over seeds ± t half-width; for one seed the value and its standard error over prompts."""
    s = seed_mean(numeric(g[col]))
    if s.n == 0:
        return "–"
    se_col = col.replace("_per_token", "") + "_se"
    if s.n == 1 and not col.endswith("_per_token") and se_col in g:
        se = numeric(g[se_col])
        return fmt.format(s.estimate) + (f" (se {se[0]:.2g} over prompts)" if se.size else "")
    return seed_cell(g[col], fmt)


@section(64, "kl", "KL between the base and each run on held-out prompts")
def render_kl(ctx: Context) -> str | None:
    add_run_values(ctx)
    table = kl_table(ctx)
    if table is None:
        return None
    ctx.tables["kl"] = table
    return ("Σ_t KL(p(·|x, y<t) ‖ q(·|x, y<t)) over the completion tokens, exact over the vocabulary, averaged "
            "over samples y and held-out prompts x of the training task; y is drawn from the model named in "
            "*samples from* (default the base). Several seeds: mean ± 95 % t half-width.\n\n" + markdown(table))
