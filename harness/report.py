"""Sweep directory -> ``report.md`` (tables with mean ± std over seeds), CSVs, PNGs, and W&B.

    python -m harness.report outputs/demo

Also runs by itself when a multirun ends (the Hydra callback in :mod:`harness.callbacks`). Tables:
1 geometry and accuracy per adapter × objective; 2 the PEFT comparison relative to full fine-tuning;
3 cross-run consistency; 4 unlearnability (when present); 5 eNTK rotation (when present). Runs that failed
or are missing are listed, never silently dropped. The geometry analysis is cached per run, so reporting a
sweep again (or a resumed one) only analyzes the new runs.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from harness.callbacks import sweep_runs

# Table 1 columns: (source column, header). Geometry keys are the whole-model entries of
# geometry_summary.json at the analyzer's first k (16 by default).
GEOMETRY_COLUMNS = (("drift", "spectral drift"), ("max_angle_{k}", "largest angle° (k={kk})"),
                    ("sparsity_bf16", "sparsity bf16"), ("sparsity_abs", "sparsity |Δ|≤1e-5"),
                    ("eff_rank", "ΔW eff. rank"), ("energy_{k}", "ΔW energy in W0 top-k"),
                    ("energy_base_{k}", "random baseline"))
GROUP = ["adapter", "objective"]


def _overrides(job: Path) -> dict[str, str]:
    """The command-line/sweep overrides of a job, e.g. {'adapter': 'lora', 'adapter.r': '8', 'seed': '0'}."""
    try:
        items = OmegaConf.to_container(OmegaConf.load(job / ".hydra" / "overrides.yaml"))
    except (OSError, ValueError):
        return {}
    out = {}
    for item in items or []:
        key, _, value = str(item).lstrip("+~").partition("=")
        out[key] = value
    return out


def _json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def collect(sweep_dir: Path) -> tuple[pd.DataFrame, list[str]]:
    """One row per job: identity, status, geometry whole-model metrics, accuracies, eNTK. Also the list of
    variant keys (swept settings other than adapter/objective/seed), which become extra group columns."""
    rows, variants = [], set()
    for job, rec in sweep_runs(sweep_dir):
        ov = _overrides(job)
        row = {"run": job.name, "status": rec["status"] if rec else "missing",
               "reason": (rec or {}).get("reason") or ("run.json missing or unreadable" if not rec else "")}
        cfg = _config(job)
        row["adapter"] = (rec or {}).get("adapter") or ov.get("adapter") or _get(cfg, "adapter.name")
        row["objective"] = (rec or {}).get("objective") or ov.get("objective") or _get(cfg, "objective.name")
        row["seed"] = (rec or {}).get("seed", ov.get("seed", _get(cfg, "seed")))
        for key, value in ov.items():
            if key not in ("adapter", "objective", "seed") and not _not_a_variant(key):
                row[key] = value
        geo = _json(job / "geometry_summary.json")
        if geo:
            row.update({f"geo:{k}": v for k, v in (geo.get("whole_model") or {}).items()})
        ev = _json(job / "eval.json")
        if ev:
            tasks = ev.get("tasks", {})
            ids = [t for t in tasks.values() if t.get("split") == "id"]
            oods = [t for t in tasks.values() if t.get("split") == "ood"]
            row["acc_id"] = _mean([t.get("accuracy") for t in ids])
            row["gain_id"] = _mean([t.get("delta") for t in ids])
            row["acc_ood"] = _mean([t.get("accuracy") for t in oods])
            row["change_ood"] = _mean([t.get("delta") for t in oods])
        en = _json(job / "entk.json")
        if en:
            row.update(en)
        rows.append(row)
    df = pd.DataFrame(rows)
    # A swept setting is a group column only where it takes more than one value in this sweep.
    fixed = {"run", "status", "reason", "adapter", "objective", "seed"}
    for key in [c for c in df.columns if c not in fixed and ":" not in c and not c.startswith(("acc_", "gain_",
                                                                                                  "change_", "entk_"))]:
        if df[key].astype(str).nunique() > 1:
            variants.add(key)
        else:
            df = df.drop(columns=key)
    return df, sorted(variants)


# Overrides that select where or how a run is measured, not what is trained: never a table column.
NOT_VARIANTS = ("sweeps", "name", "out_root", "force", "logger", "hydra", "report", "eval", "entk", "passrate",
                "save_model", "store_dtype")


def _not_a_variant(key: str) -> bool:
    return key.split(".")[0].split("/")[0] in NOT_VARIANTS


def _config(job: Path):
    try:
        return OmegaConf.load(job / ".hydra" / "config.yaml")
    except (OSError, ValueError):
        return None


def _get(cfg, key: str):
    return None if cfg is None else OmegaConf.select(cfg, key)


def _mean(xs) -> float:
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return float(np.mean(xs)) if xs else math.nan


def pm(series: pd.Series, fmt: str = "{:.3g}") -> str:
    """mean ± std over seeds (std omitted for a single seed)."""
    s = pd.to_numeric(series, errors="coerce").dropna()
    if s.empty:
        return "–"
    if len(s) == 1:
        return fmt.format(s.iloc[0])
    return f"{fmt.format(s.mean())} ± {fmt.format(s.std(ddof=1))}"


def markdown(df: pd.DataFrame) -> str:
    """A markdown table (no extra dependency)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(str(r[c]) for c in cols) + " |")
    return "\n".join(lines)


def _first_k(df: pd.DataFrame) -> str:
    ks = sorted({c.split("geo:energy_base_")[1] for c in df.columns if c.startswith("geo:energy_base_")})
    return "k16" if "k16" in ks else (ks[0] if ks else "k16")


def table1(done: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    k = _first_k(done)
    out = []
    for group, g in done.groupby(keys, sort=True, dropna=False):
        row = dict(zip(keys, group if isinstance(group, tuple) else (group,)))
        row["seeds"] = len(g)
        for src, head in GEOMETRY_COLUMNS:
            col = "geo:" + src.format(k=k)
            row[head.format(kk=k[1:])] = pm(g[col]) if col in g else "–"
        row["ID accuracy gain"] = pm(g["gain_id"], "{:+.3f}") if "gain_id" in g else "–"
        row["OOD change"] = pm(g["change_ood"], "{:+.3f}") if "change_ood" in g else "–"
        out.append(row)
    return pd.DataFrame(out)


def table2(done: pd.DataFrame, keys: list[str]) -> pd.DataFrame | None:
    """Each adapter's in-distribution accuracy relative to full fine-tuning, per objective, and the gap."""
    if "acc_id" not in done or "full" not in set(done["adapter"]):
        return None
    extra = [k for k in keys if k not in GROUP]
    means = done.groupby(["adapter", "objective", *extra], dropna=False)["acc_id"].mean()
    rows = []
    for (adapter, *rest), _ in done.groupby(["adapter", *extra], sort=True, dropna=False):
        row = {"adapter": adapter, **dict(zip(extra, rest))}
        rel = {}
        for obj in ("sft", "rlvr"):
            try:
                a, f = means[(adapter, obj, *rest)], means[("full", obj, *rest)]
            except KeyError:
                row[f"{obj}: acc / full"] = "–"
                continue
            rel[obj] = a / f if f else math.nan
            row[f"{obj}: acc / full"] = f"{a:.3f} / {f:.3f} = {rel[obj]:.2f}"
        row["gap (SFT rel − RLVR rel)"] = (f"{rel['sft'] - rel['rlvr']:+.2f}" if len(rel) == 2 and
                                           all(np.isfinite(list(rel.values()))) else "–")
        rows.append(row)
    return pd.DataFrame(rows)


def table3(sweep_dir: Path, done: pd.DataFrame) -> pd.DataFrame | None:
    """Cross-run consistency (whole model): across seeds (same adapter and objective) and across objectives
    (same adapter and seed), beside the random baselines."""
    cross = _read_csv(sweep_dir / "cross_run.csv")
    if cross is None or cross.empty:
        return None
    cross = cross[cross["scope"] == "all"]  # whole model; per module type stays in cross_run.csv
    info = done.set_index("run")
    names = _read_csv(sweep_dir / "geometry_runs.csv")  # the analyzer labels runs; map labels to run dirs
    to_run = dict(zip(names["label"].astype(str), names["run"].astype(str))) if names is not None else {}
    cross = cross.assign(run_a=cross["run_a"].astype(str).map(lambda x: to_run.get(x, x)),
                         run_b=cross["run_b"].astype(str).map(lambda x: to_run.get(x, x)))
    a_col, b_col = "run_a", "run_b"
    rows = []
    for _, r in cross.iterrows():
        a, b = str(r[a_col]), str(r[b_col])
        if a not in info.index or b not in info.index:
            continue
        ia, ib = info.loc[a], info.loc[b]
        if ia["adapter"] != ib["adapter"]:
            kind = None
        elif ia["objective"] == ib["objective"] and str(ia["seed"]) != str(ib["seed"]):
            kind = "across seeds"
        elif ia["objective"] != ib["objective"] and str(ia["seed"]) == str(ib["seed"]):
            kind = "across objectives"
        else:
            kind = None
        if kind:
            obj = ia["objective"] if kind == "across seeds" else "sft vs rlvr"
            rows.append({"adapter": ia["adapter"], "comparison": kind, "objective": obj, **{
                c: r[c] for c in cross.columns if c.startswith(("cos", "jaccard"))}})
    if not rows:
        return None
    df = pd.DataFrame(rows)
    metrics = [c for c in df.columns if c.startswith(("cos", "jaccard"))]
    return df.groupby(["adapter", "comparison", "objective"], sort=True).agg(
        {c: lambda s: pm(s, "{:.3f}") for c in metrics}).reset_index()


def _read_csv(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path)
    except (OSError, ValueError):
        return None


def table5(done: pd.DataFrame, keys: list[str]) -> pd.DataFrame | None:
    if "entk_max_angle_deg" not in done:
        return None
    rows = []
    for group, g in done.groupby(keys, sort=True, dropna=False):
        row = dict(zip(keys, group if isinstance(group, tuple) else (group,)))
        row["eNTK largest angle° (rotation)"] = pm(g["entk_max_angle_deg"], "{:.2f}")
        row["mean angle°"] = pm(g["entk_mean_angle_deg"], "{:.2f}")
        row["top-k eigenvalue rel. change (rescaling)"] = pm(g["entk_eig_rel_change"], "{:.3f}")
        row["top eigenvalue ratio"] = pm(g["entk_top_eig_ratio"], "{:.3f}")
        rows.append(row)
    return pd.DataFrame(rows)


def plot_curves(sweep_dir: Path, runs: pd.DataFrame, out: Path) -> Path | None:
    """SFT loss and RLVR reward per step, one line per run (GRPO's loss is ~0 by construction: not shown)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    drawn = False
    for _, r in runs.iterrows():
        path = sweep_dir / r["run"] / "train_log.jsonl"
        if not path.exists():
            continue
        log = pd.read_json(path, lines=True)
        if log.empty:
            continue
        label = f"{r['adapter']}/{r['objective']}/s{r['seed']}"
        if "reward" in log:
            axes[1].plot(log["step"], log["reward"], label=label)
            drawn = True
        elif "loss" in log:
            axes[0].plot(log["step"], log["loss"], label=label)
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    axes[0].set(title="SFT loss", xlabel="step")
    axes[1].set(title="RLVR mean reward", xlabel="step")
    for ax in axes:
        if ax.lines:
            ax.legend(fontsize=6)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def header(sweep_dir: Path, runs: pd.DataFrame) -> str:
    cfgs = [c for c in (_config(sweep_dir / r) for r in runs["run"]) if c is not None]
    c = cfgs[0] if cfgs else None
    steps = sorted({str(_get(x, "objective.name")) + ":" + str(_get(x, "objective.steps")) for x in cfgs})
    seeds = sorted({str(_get(x, "seed")) for x in cfgs})
    return (f"# Sweep report: {sweep_dir.name}\n\n"
            f"- model: `{_get(c, 'model.name')}` (warm-up: {bool(_get(c, 'model.warmup.enabled'))}), "
            f"task: `{_get(c, 'task.name')}` ({_get(c, 'task.n_train')} train / {_get(c, 'task.n_test')} held-out prompts)\n"
            f"- steps: {', '.join(steps)}; seeds: {', '.join(seeds)}; runs: {len(runs)} "
            f"({(runs['status'] == 'done').sum()} done)\n"
            f"- mean ± std over seeds; a single seed shows no std.\n")


def build_report(sweep_dir: Path, wandb_log: bool = True) -> Path:
    """Write ``report.md`` (+ CSVs and PNGs under ``report/``) for a sweep dir and return its path."""
    from harness.analyze import SECTIONS, geometry_section

    sweep_dir = Path(sweep_dir)
    out_dir = sweep_dir / "report"
    out_dir.mkdir(exist_ok=True)
    geometry_section(sweep_dir)  # analyzes new runs (cached per run), writes geometry files and plots
    runs, variants = collect(sweep_dir)
    if runs.empty:
        raise SystemExit(f"error: {sweep_dir} holds no runs (no */.hydra/config.yaml)")
    keys = GROUP + variants
    done = runs[runs["status"] == "done"].copy()
    parts = [header(sweep_dir, runs)]
    bad = runs[runs["status"] != "done"]
    if not bad.empty:
        parts.append("## Runs not included\n\n" + markdown(bad[["run", "status", "reason"]]) + "\n")
    tables: dict[str, pd.DataFrame] = {}
    if not done.empty:
        tables["table1_geometry_accuracy"] = table1(done, keys)
        t2 = table2(done, keys)
        if t2 is not None:
            tables["table2_peft_vs_full"] = t2
        t3 = table3(sweep_dir, done)
        if t3 is not None:
            tables["table3_consistency"] = t3
        t5 = table5(done, keys)
        if t5 is not None:
            tables["table5_entk"] = t5
    titles = {
        "table1_geometry_accuracy": "Table 1 — update geometry and accuracy per adapter × objective",
        "table2_peft_vs_full": "Table 2 — PEFT vs full fine-tuning (in-distribution accuracy relative to full)",
        "table3_consistency": "Table 3 — cross-run consistency (whole model; random baselines beside)",
        "table5_entk": "Table 5 — eNTK rotation (lability) vs eigenvalue rescaling (propensity)",
    }
    for name, df in tables.items():
        df.to_csv(out_dir / f"{name}.csv", index=False)
        if name == "table5_entk":
            continue
        parts.append(f"## {titles[name]}\n\n{markdown(df)}\n")
    other = [s for s in SECTIONS if s is not geometry_section]
    for section in other:
        text = section(sweep_dir)
        if text:  # the unlearnability section is the papers' Table 4
            parts.append(text.strip().replace("## Unlearnability", "## Table 4 — unlearnability", 1) + "\n")
    if "table5_entk" in tables:
        parts.append(f"## {titles['table5_entk']}\n\n{markdown(tables['table5_entk'])}\n")
    figures = plot_figures(sweep_dir, runs, out_dir)
    if figures:
        parts.append("## Figures\n\n" + "\n".join(f"![{p.stem}]({p.relative_to(sweep_dir).as_posix()})"
                                                    for p in figures) + "\n")
    runs.to_csv(out_dir / "runs.csv", index=False)
    report = sweep_dir / "report.md"
    tmp = report.with_suffix(".tmp")
    tmp.write_text("\n".join(parts))
    tmp.replace(report)
    if wandb_log:
        from harness.wandb_report import log_report

        log_report(sweep_dir, tables, figures, runs)
    return report


def plot_figures(sweep_dir: Path, runs: pd.DataFrame, out_dir: Path) -> list[Path]:
    figs = []
    curves = plot_curves(sweep_dir, runs, out_dir / "curves.png")
    if curves:
        figs.append(curves)
    for pattern in ("plots/*.png", "unlearnability/*.png"):  # the analyzer's and the unlearnability plots
        figs.extend(sorted(p for p in sweep_dir.glob(pattern) if p.is_file()))
    return figs


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: python -m harness.report <sweep dir>", file=sys.stderr)
        raise SystemExit(2)
    path = Path(argv[0])
    if not path.is_dir():
        print(f"error: sweep dir {str(path)!r} does not exist", file=sys.stderr)
        raise SystemExit(2)
    report = build_report(path)
    print(f"[harness] report: {report}")


if __name__ == "__main__":
    main()
