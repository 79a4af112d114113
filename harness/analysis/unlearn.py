"""Sweep-level unlearnability analysis: ``unlearnability.csv``, a markdown summary, and plots.

Runs are grouped into *conditions* by :class:`harness.analysis.sweep.Sweep`: adapter, objective and every other swept
setting except the seed. An RLVR condition is paired with the SFT
condition that differs from it only in the objective, seed for seed, for the SFT cross-check.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from harness.core.store import atomic_savefig, atomic_write_text
from harness.measure.classify import (
    EASY,
    HARD_CLASSES,
    LEARNABLE,
    MIXED,
    NEVER,
    UNLEARNABLE,
    across_seeds,
    classify,
    hard_fractions,
    spread,
)

COLORS = {EASY: "#9e9e9e", LEARNABLE: "#2e7d32", UNLEARNABLE: "#c62828", NEVER: "#1565c0", MIXED: "#ff8f00"}
SIM_GROUPS = (EASY, LEARNABLE, UNLEARNABLE)


# --- loading ---------------------------------------------------------------------------------------------


def load_sweep(sweep_dir: Path) -> pd.DataFrame | None:
    """Every done run's prompts.csv, one row per (run, prompt), with run columns; None without any.

    ``condition`` and ``pair`` come from :class:`harness.analysis.sweep.Sweep`: runs that differ in any swept setting
    other than the seed are never pooled; ``pair`` (the SFT cross-check) drops only the objective and its
    ``objective.*`` settings.
    """
    from harness.analysis.sweep import load_sweep as read_sweep

    sweep = read_sweep(Path(sweep_dir))
    frames = []
    for row in sweep.done.to_dict("records"):
        run = sweep.run(row["run"])
        df = run.prompts()
        if df is None:
            continue
        df["run"] = run.name
        df["adapter"], df["objective"], df["seed"] = row["adapter"], row["objective"], int(row["seed"] or 0)
        df["condition"] = row["condition"]
        pair_extra = ",".join(f"{k}={row[k]}" for k in sweep.settings if not k.startswith("objective"))
        df["pair"] = row["adapter"] + (f" [{pair_extra}]" if pair_extra else "")
        df["tau"] = float(run.get("passrate.tau", 0.1))
        df["rl"] = run.file("ledger.csv").exists()  # an RL run (GRPO, RLOO, ...): it sampled and rewarded rollouts
        df["_job"] = str(run.path)
        frames.append(df)
    if not frames:
        return None
    df = pd.concat(frames, ignore_index=True)
    df["group"] = df["group"].fillna("")
    seen = df["correct_seen"].fillna(0) + df.get("gold_seen", 0)
    df["class"] = [classify(a, b, c, t) for a, b, c, t in zip(df.pass_start, df.pass_end, seen, df.tau)]
    return df


# --- analysis --------------------------------------------------------------------------------------------


def add_across_seeds(df: pd.DataFrame) -> pd.DataFrame:
    """``class_all_seeds`` and ``n_seeds`` per (condition, prompt)."""
    agg = df.groupby(["condition", "prompt_id"]).agg(
        class_all_seeds=("class", lambda s: across_seeds(s)), n_seeds=("seed", "nunique")).reset_index()
    return df.merge(agg, on=["condition", "prompt_id"], how="left")


def add_gradient_similarity(df: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """``sim_to_rest`` per (run, prompt) from each RLVR run's grad_sketch.npz; the sketch settings."""
    from harness.measure.gradsim import similarity_to_rest

    df = df.copy()
    df["sim_to_rest"] = np.nan
    meta: dict = {}
    for job in df.loc[df.rl, "_job"].unique():
        path = Path(job) / "grad_sketch.npz"
        if not path.exists():
            continue
        z = np.load(path)
        if len(z["ids"]) < 2:
            continue
        meta = {"dim": int(z["dim"]), "params": str(z["params"]), "max_rollouts": int(z["n_rollouts"].max()),
                "at": str(z["at"]) if "at" in z else "base",
                "source": str(z["source"]) if "source" in z else "base samples"}
        sims = dict(zip([str(i) for i in z["ids"]], similarity_to_rest(z["sketch"])))
        rows = (df._job == job) & (df.split == "train")
        df.loc[rows, "sim_to_rest"] = df.loc[rows, "prompt_id"].map(sims)
    return df, meta


def add_sft_crosscheck(df: pd.DataFrame) -> pd.DataFrame:
    """For RLVR rows: the SFT run of the same pair and seed: its pass@1 at end, and whether it learned."""
    df = df.copy()
    sft = df[df.objective == "sft"][["pair", "seed", "prompt_id", "split", "pass_end"]].rename(
        columns={"pass_end": "sft_pass_end"})
    df = df.merge(sft, on=["pair", "seed", "prompt_id", "split"], how="left")
    df.loc[~df.rl, "sft_pass_end"] = np.nan
    df["sft_learned"] = np.where(df.sft_pass_end.notna(), (df.sft_pass_end > df.tau).astype(float), np.nan)
    return df


def _fmt(m: float, sd: float | None = None, lo: float | None = None, hi: float | None = None,
         pct: bool = True) -> str:
    if m is None or (isinstance(m, float) and math.isnan(m)):
        return "–"
    f = (lambda x: f"{100 * x:.0f}%") if pct else (lambda x: f"{x:.2f}")
    out = f(m)
    if sd is not None and not math.isnan(sd) and sd > 1e-9:
        out += f" ± {f(sd)}"
    if lo is not None and hi is not None and not math.isnan(lo) and hi - lo > 1e-9:
        out += f" [{f(lo)}–{f(hi)}]"
    return out


def _p(p: float) -> str:
    return "–" if p is None or math.isnan(p) else (f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}")


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per condition: hard count and hard-class fractions (per-seed mean/std/min/max), all-seeds fractions,
    pass@1 start -> end on the training and held-out splits."""
    rows = []
    for cond, d in df.groupby("condition", sort=True):
        train = d[d.split == "train"]
        row = {"condition": cond, "objective": d.objective.iloc[0], "adapter": d.adapter.iloc[0],
               "seeds": d.seed.nunique(), "prompts": train.prompt_id.nunique(), "tau": d.tau.iloc[0]}
        per_seed = [hard_fractions(list(t["class"])) for _, t in train.groupby("seed")]
        row["hard"] = spread([f["hard"] for f in per_seed])[0]
        for c in HARD_CLASSES:
            m, sd, lo, hi = spread([f[c] for f in per_seed])
            row.update({f"{c}": m, f"{c}_std": sd, f"{c}_min": lo, f"{c}_max": hi})
        first = train.drop_duplicates("prompt_id")
        allf = hard_fractions(list(first.class_all_seeds))
        for c in (*HARD_CLASSES, MIXED):
            row[f"{c}_all_seeds"] = allf[c]
        for split in ("train", "test"):
            s = d[d.split == split]
            if len(s):
                # mean over seeds of the per-seed mean: with passrate.start_seeded each seed has its own start
                row[f"{split}_pass_start"] = s.groupby("seed").pass_start.mean().mean()
                m, sd, _, _ = spread(list(s.groupby("seed").pass_end.mean()))
                row[f"{split}_pass_end"], row[f"{split}_pass_end_std"] = m, sd
        test = d[d.split == "test"]
        if len(test):
            gen = [((t.pass_start <= t.tau) & (t.pass_end > t.tau)).sum() / max(1, (t.pass_start <= t.tau).sum())
                   for _, t in test.groupby("seed")]
            row["test_hard_learned"], row["test_hard_learned_std"] = spread(gen)[:2]
        rows.append(row)
    return pd.DataFrame(rows)


def _sketches(job: str) -> tuple[list[str], np.ndarray] | None:
    path = Path(job) / "grad_sketch.npz"
    if not path.exists():
        return None
    z = np.load(path)
    return [str(i) for i in z["ids"]], z["sketch"]


def similarity_table(df: pd.DataFrame, n_boot: int = 1000, n_perm: int = 10_000) -> pd.DataFrame:
    """Per RLVR condition and group (easy / learnable / unlearnable, across seeds): the group's training
    prompts, how many have a gradient (``n``) and why the others were left out, the mean similarity to the rest
    with a bootstrap CI over prompts, and permutation p-values (labels permuted over the prompt x prompt cosine
    matrix pooled over seeds) against the unlearnable group and, for learnable vs easy, against each other;
    Mann–Whitney on the same scores beside them (``p_mw_*``) for comparison."""
    from harness.measure.gradsim import (
        bootstrap_ci,
        mann_whitney,
        mean_to_rest,
        permutation_test,
        pooled_cosine_matrix,
    )

    rows = []
    rl = df[df.rl & (df.split == "train")]
    for cond, d in rl.groupby("condition", sort=True):
        runs = [r for r in (_sketches(j) for j in d._job.unique()) if r is not None]
        if not runs:
            continue
        ids, sim, _ = pooled_cosine_matrix(runs)
        per_prompt = d.groupby("prompt_id").agg(cls=("class_all_seeds", "first"), sampled=("rollouts_seen", "max"),
                                                correct=("correct_seen", "max"))
        labels = [per_prompt.cls.get(p, "") for p in ids]
        score = dict(zip(ids, mean_to_rest(sim)))
        vals = {g: np.array([score[p] for p, c in zip(ids, labels) if c == g]) for g in SIM_GROUPS}

        def test(a: str, b: str, sim=sim, labels=labels, vals=vals) -> tuple[float, float, float]:
            r = permutation_test(sim, labels, a, b, n_perm=n_perm)
            return r.statistic, r.p, mann_whitney(vals[a], vals[b])

        for g in SIM_GROUPS:
            members = per_prompt[per_prompt.cls == g]
            out = members[~members.index.isin(ids)]
            v = vals[g]
            lo, hi = bootstrap_ci(v, n_boot)
            row = {"condition": cond, "group": g, "prompts": len(members), "n": len(v),
                   "left_not_sampled": int((out.sampled == 0).sum()),
                   "left_no_correct": int(((out.sampled > 0) & (out.correct == 0)).sum()),
                   "left_not_kept": int((out.correct > 0).sum()),
                   "mean_sim": float(np.mean(v)) if len(v) else np.nan, "ci_lo": lo, "ci_hi": hi}
            row["diff_vs_unlearnable"], row["p_vs_unlearnable"], row["p_mw_vs_unlearnable"] = (
                test(g, UNLEARNABLE) if g != UNLEARNABLE else (np.nan,) * 3)
            ref = LEARNABLE if g == EASY else (EASY if g == LEARNABLE else None)
            row["diff_vs_other"], row["p_vs_other"], row["p_mw_vs_other"] = test(g, ref) if ref else (np.nan,) * 3
            rows.append(row)
        # the prompts in no group: their class differs between seeds, or they were never rewarded
        for g in (MIXED, NEVER):
            members = per_prompt[per_prompt.cls == g]
            rows.append({"condition": cond, "group": g, "prompts": len(members),
                         "n": int(members.index.isin(ids).sum())})
    return pd.DataFrame(rows)


def crosscheck_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per RLVR condition and seed (and ``all`` = the all-seeds unlearnable set against every SFT seed):
    RLVR-unlearnable prompts, how many of them the SFT run on the same data learned."""
    rows = []
    rl = df[df.rl & (df.split == "train")]
    for cond, d in rl.groupby("condition", sort=True):
        if d.sft_pass_end.isna().all():
            continue
        for seed, s in d.groupby("seed"):
            u = s[(s["class"] == UNLEARNABLE) & s.sft_learned.notna()]
            rows.append({"condition": cond, "seed": str(seed), "unlearnable": len(u),
                         "learned_by_sft": float(u.sft_learned.sum()),
                         "fraction": u.sft_learned.mean() if len(u) else np.nan})
        u = d[(d.class_all_seeds == UNLEARNABLE) & d.sft_learned.notna()]
        rows.append({"condition": cond, "seed": "all", "unlearnable": u.prompt_id.nunique(),
                     "learned_by_sft": float(u.groupby("prompt_id").sft_learned.mean().sum()),
                     "fraction": u.sft_learned.mean() if len(u) else np.nan})
    return pd.DataFrame(rows)


# --- plots -----------------------------------------------------------------------------------------------


def _grid(n: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.3 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return plt, fig, list(axes.flat)


def plot_scatter(df: pd.DataFrame, path: Path) -> Path | None:
    train = df[df.split == "train"]
    conds = sorted(train.condition.unique())
    if not conds:
        return None
    plt, fig, axes = _grid(len(conds))
    rng = np.random.default_rng(0)
    for ax, cond in zip(axes, conds):
        d = train[train.condition == cond]
        for c, color in COLORS.items():
            s = d[d["class"] == c]
            if len(s):
                jx, jy = rng.uniform(-0.012, 0.012, (2, len(s)))
                ax.scatter(s.pass_start + jx, s.pass_end + jy, s=12, alpha=0.6, color=color,
                           label=f"{c} ({len(s)})")
        tau = d.tau.iloc[0]
        ax.axvline(tau, color="k", lw=0.6, ls="--")
        ax.axhline(tau, color="k", lw=0.6, ls="--")
        ax.plot([0, 1], [0, 1], color="k", lw=0.4, alpha=0.4)
        ax.set(xlim=(-0.03, 1.03), ylim=(-0.03, 1.03), xlabel="pass@1 start", ylabel="pass@1 end")
        ax.set_title(f"{cond} ({d.seed.nunique()} seeds)", fontsize=8)
        ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    atomic_savefig(fig, path)
    plt.close(fig)
    return path


def plot_similarity(df: pd.DataFrame, path: Path) -> Path | None:
    rl = df[df.rl & (df.split == "train") & df.sim_to_rest.notna()]
    conds = sorted(rl.condition.unique())
    if not conds:
        return None
    plt, fig, axes = _grid(len(conds))
    for ax, cond in zip(axes, conds):
        per_prompt = rl[rl.condition == cond].groupby("prompt_id").agg(
            sim=("sim_to_rest", "mean"), cls=("class_all_seeds", "first"))
        bins = np.linspace(per_prompt.sim.min(), per_prompt.sim.max() + 1e-9, 16)
        for g in SIM_GROUPS:
            v = per_prompt.sim[per_prompt.cls == g]
            if len(v):
                ax.hist(v, bins=bins, alpha=0.5, color=COLORS[g], label=f"{g} ({len(v)})")
        ax.set(xlabel="mean gradient cosine to the rest", ylabel="prompts")
        ax.set_title(cond, fontsize=8)
        ax.legend(fontsize=6)
    fig.tight_layout()
    atomic_savefig(fig, path)
    plt.close(fig)
    return path


# --- the section -----------------------------------------------------------------------------------------


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _markdown(summary: pd.DataFrame, sims: pd.DataFrame, cross: pd.DataFrame, meta: dict, plots: list[str],
              n_boot: int, n_perm: int = 10_000) -> str:
    tau = summary.tau.iloc[0]
    lines = ["## Unlearnability", "",
             f"Classes of the training prompts (τ = {tau:g}): *hard* = pass@1 at start ≤ τ; of the hard prompts, "
             "*learnable* = pass@1 at end > τ, *unlearnable* = still ≤ τ although correct rollouts were seen "
             "(SFT: the gold answer), *never-rewarded* = no correct rollout seen. Fractions are of the hard set: "
             "mean ± std over seeds [min–max]; *all seeds* = the same class in every seed (unlearnable = "
             "unlearnable in every seed; prompts whose class differs between seeds are *mixed*).", "",
             "| condition | seeds | hard | learnable | unlearnable | never-rewarded | unlearnable (all seeds) "
             "| mixed | train pass@1 start→end | held-out pass@1 start→end | held-out hard learned |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in summary.iterrows():
        cells = [r.condition, str(int(r.seeds)), f"{r.hard:.0f}/{r.prompts:.0f}"]
        for c in HARD_CLASSES:
            cells.append(_fmt(r[c], r[f"{c}_std"], r[f"{c}_min"], r[f"{c}_max"]))
        cells += [_fmt(r[f"{UNLEARNABLE}_all_seeds"]), _fmt(r[f"{MIXED}_all_seeds"])]
        for split in ("train", "test"):
            if f"{split}_pass_end" in r and not pd.isna(r.get(f"{split}_pass_end")):
                cells.append(f"{r[f'{split}_pass_start']:.2f} → {_fmt(r[f'{split}_pass_end'], r[f'{split}_pass_end_std'], pct=False)}")
            else:
                cells.append("–")
        cells.append(_fmt(r.get("test_hard_learned", np.nan), r.get("test_hard_learned_std", np.nan)))
        lines.append("| " + " | ".join(cells) + " |")
    if len(sims):
        at = {"base": "the base weights W0 (the same for every run)", "end": "each run's final merged weights"}
        src = ("correct rollouts sampled during training" if meta.get("source") == "training"
               else "correct samples of the base")
        lines += ["", f"Gradient similarity (RLVR conditions): per rewarded training prompt, the gradient at "
                  f"{at.get(meta.get('at', 'base'), meta.get('at'))} of the mean token log-likelihood of its first "
                  f"{meta.get('max_rollouts', '?')} {src}, count-sketched to d = {meta.get('dim', '?')} "
                  f"({meta.get('params', '?')}). The cosine matrices of the seeds are pooled (each pair averaged "
                  "over the seeds that sketched both); a prompt's value is its mean cosine to every other prompt of "
                  "the matrix; groups by the all-seeds class; 95% bootstrap CI over prompts "
                  f"({n_boot} resamples). p: two-sided permutation test of the difference of group means, group "
                  f"labels permuted over the matrix ({n_perm} permutations, p ≥ 1/{n_perm + 1}): the prompts' "
                  "values share pairwise terms, so they are not independent samples. Left out: prompts of the "
                  "group without a gradient in any seed (never sampled / sampled, never correct / correct but "
                  f"not kept). Sketch noise ≈ {1 / math.sqrt(max(1, meta.get('dim', 1))):.3f} per cosine.", "",
                  "| condition | group | with gradient / prompts | left out: not sampled, no correct, not kept "
                  "| mean cosine to rest [95% CI] | Δ vs unlearnable (p) | Δ learnable − easy (p) |",
                  "|---|---|---|---|---|---|---|"]
        for _, r in sims[sims.group.isin(SIM_GROUPS)].iterrows():
            ci = f"{r.mean_sim:.4f} [{r.ci_lo:.4f}, {r.ci_hi:.4f}]" if r.n else "–"
            vs_u = "" if r.group == UNLEARNABLE or pd.isna(r.p_vs_unlearnable) else (
                f"{r.diff_vs_unlearnable:+.4f} ({_p(r.p_vs_unlearnable)})")
            other = f"{r.diff_vs_other:+.4f} ({_p(r.p_vs_other)})" if (
                r.group == LEARNABLE and not pd.isna(r.p_vs_other)) else ""
            left = f"{r.left_not_sampled:.0f}, {r.left_no_correct:.0f}, {r.left_not_kept:.0f}"
            lines.append(f"| {r.condition} | {r.group} | {r.n:.0f}/{r.prompts:.0f} | {left} | {ci} | {vs_u} "
                         f"| {other} |")
        rest = sims[~sims.group.isin(SIM_GROUPS)]
        for cond, d in rest.groupby("condition", sort=True):
            counts = ", ".join(f"{r.group} {r.prompts:.0f} ({r.n:.0f} with gradient)" for _, r in d.iterrows())
            lines.append(f"\n{cond}: prompts in no tested group: {counts}; those with a gradient count in the "
                         "others' similarity to the rest.")
    if len(cross):
        lines += ["", "SFT cross-check: of the prompts RLVR left unlearnable, how many the SFT run on the same data "
                  "(same adapter and seed) learned (pass@1 at end > τ); *all* = the all-seeds unlearnable "
                  "prompts against every SFT seed.", "",
                  "| RLVR condition | seed | RLVR-unlearnable | learned by SFT | fraction |", "|---|---|---|---|---|"]
        for _, r in cross.iterrows():
            lines.append(f"| {r.condition} | {r.seed} | {r.unlearnable} | {r.learned_by_sft:g} | {_fmt(r.fraction)} |")
    if plots:
        lines += ["", "Plots: " + ", ".join(f"`{p}`" for p in plots) + " (pass@1 start vs end coloured by "
                  "class, pooled over seeds; histograms of each prompt's mean gradient cosine to the rest)."]
    return "\n".join(lines) + "\n"


def unlearnability_section(sweep_dir: Path, out_dir: Path | None = None, n_boot: int | None = None) -> str | None:
    """Compute the sweep's unlearnability tables and plots, write them (``unlearnability.csv``,
    ``unlearnability_summary.csv``, ``unlearnability_similarity.csv``, ``unlearnability_sft.csv``,
    ``unlearnability.md``, ``unlearnability_scatter.png``, ``unlearnability_gradsim.png``) into ``out_dir``
    (default ``<sweep dir>/unlearnability/``) and return the markdown; None when no run has a prompts.csv.
    A single run dir works too."""
    sweep_dir = Path(sweep_dir)
    df = load_sweep(sweep_dir)
    if df is None:
        return None
    out_dir = Path(out_dir) if out_dir else sweep_dir / "unlearnability"
    out_dir.mkdir(parents=True, exist_ok=True)
    if n_boot is None:
        n_boot = _n_boot(Path(df._job.iloc[0]))
    df = add_across_seeds(df)
    df, meta = add_gradient_similarity(df)
    df = add_sft_crosscheck(df)
    summary = summary_table(df)
    n_perm = _n_perm(Path(df._job.iloc[0]))
    sims = similarity_table(df, n_boot, n_perm)
    cross = crosscheck_table(df)
    cols = ["run", "condition", "pair", "adapter", "objective", "seed", "prompt_id", "split", "group", "pass_start",
            "pass_end", "rollouts_seen", "correct_seen", "gold_seen", "class", "class_all_seeds", "n_seeds",
            "sim_to_rest", "sft_pass_end", "sft_learned"]
    df[[c for c in cols if c in df]].sort_values(["condition", "seed", "split", "prompt_id"]).to_csv(
        out_dir / "unlearnability.csv", index=False)
    summary.to_csv(out_dir / "unlearnability_summary.csv", index=False)
    sims.to_csv(out_dir / "unlearnability_similarity.csv", index=False)
    cross.to_csv(out_dir / "unlearnability_sft.csv", index=False)
    plots = [p for p in (plot_scatter(df, out_dir / "unlearnability_scatter.png"),
                         plot_similarity(df, out_dir / "unlearnability_gradsim.png")) if p]
    text = _markdown(summary, sims, cross, meta, [_rel(p, sweep_dir) for p in plots], n_boot, n_perm)
    atomic_write_text(out_dir / "unlearnability.md", text)
    return text


def _n_boot(job: Path) -> int:
    from harness.analysis.sweep import RunDir

    return int(RunDir(job).get("passrate.grad_sim.n_boot", 1000))


def _n_perm(job: Path) -> int:
    from harness.analysis.sweep import RunDir

    return int(RunDir(job).get("passrate.grad_sim.n_perm", 10_000))
