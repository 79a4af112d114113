"""*The Unlearnability Phenomenon in RLVR* (arXiv 2605.16787): U1–U3, from ``prompts.csv`` and gradient
sketches, through :mod:`harness.analysis.unlearn` (the same classes and tests as Table 4); U4 from a retrain
study's ``prompts.csv`` (``sweeps=unlearnable_retrain``); U5 from ``augment.csv`` (:mod:`harness.measure.augment`)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from harness.claims.base import CONTRADICTED, INCONCLUSIVE, SUPPORTED, Claim, Part, Result, register
from harness.claims.data import ClaimData, over_seeds, plain

if TYPE_CHECKING:
    import pandas as pd

SOURCE = "The Unlearnability Phenomenon in RLVR (arXiv 2605.16787)"
NEEDS = "prompts.csv (passrate.enabled=true)"
ALPHA = 0.05  # the permutation test's level for U2
MOST = 0.5  # U3: SFT "learns them" = more than half of the RLVR-unlearnable prompts
# U5: an augmentation "raises" an unlearnable prompt's gradient similarity to the rest when it adds at least 0.02
# to the mean cosine: the sketch's per-pair cosine error sd at d = 4096 is <= 0.016 (harness/measure/gradsim.py),
# so a smaller rise is not told apart from the projection.
RAISE = 0.02
# U4: a technique "resolves" unlearnability when it makes at least 10 % of a first study's unlearnable prompts
# learnable beyond what plain retraining does (the plain arm: the claims study's GRPO settings, which are the
# first study's when that is the claims study; it also absorbs the regression to the mean of prompts selected for
# a low pass rate).
RESOLVES = 0.1
PLAIN = "plain"


def _frame(data: ClaimData):
    """(per (run, prompt) classes with across-seed classes, the RLVR condition used) or (None, None)."""
    from harness.analysis.unlearn import add_across_seeds, load_sweep

    g = data.group(lambda r: r.get("objective") == "rlvr" and plain(r) and bool(
        (data.sweep.run(r["run"]).path / "prompts.csv").exists()))
    if g.empty:
        return None, None
    df = load_sweep(data.sweep.path)
    if df is None:
        return None, None
    cond = str(g["condition"].iloc[0])
    return add_across_seeds(df), cond


def u1(data: ClaimData) -> list[Part]:
    from harness.measure.classify import UNLEARNABLE, hard_fractions

    df, cond = _frame(data)
    if df is None:
        return [over_seeds("unlearnable share of hard prompts", [], [], 0.0, "above", NEEDS)]
    d = df[(df.condition == cond) & (df.split == "train")]
    vals = [hard_fractions(list(s["class"]))[UNLEARNABLE] for _, s in d.groupby("seed")]
    all_seeds = hard_fractions(list(d.drop_duplicates("prompt_id").class_all_seeds))[UNLEARNABLE]
    return [over_seeds("unlearnable share of hard prompts (per seed)", vals, sorted(d.run.unique()), 0.0, "above",
                       note=f"{cond}; unlearnable in every seed: {all_seeds:.0%} of hard{resolution(d)}")]


def resolution(d: pd.DataFrame) -> str:
    """What "learned" (pass@1 > τ at the end) means in samples at the measured K: with few samples one lucky
    correct sample already counts (K = 8, τ = 0.1: 1 of 8; the paper's K = 32: 4 of 32)."""
    if "k" not in d or "tau" not in d:
        return ""
    pairs = sorted({(int(k), float(t)) for k, t in zip(d["k"], d["tau"]) if k == k and t == t})
    return "".join(f"; K = {k}: learned = at least {math.floor(t * k) + 1} of {k} samples correct at the end"
                   for k, t in pairs)


register(Claim(
    "U1", "A nonzero share of hard prompts stays unlearnable although correct rollouts were sampled", SOURCE,
    "per seed: unlearnable / hard training prompts (hard: pass@1 ≤ τ at start; seen correct, still ≤ τ at end)",
    "the RLVR condition with prompts.csv (Sweep.groups; most seeds), mean over seeds",
    "0; claim: above", "17–30 % of hard prompts (pass@1 ≤ 0.1 from 32 samples at T = 0.7, every one of 3 seeds)",
    u1, order=120))


def u2(data: ClaimData) -> list[Part]:
    from harness.analysis.unlearn import similarity_table
    from harness.measure.classify import LEARNABLE, UNLEARNABLE

    df, cond = _frame(data)
    if df is None:
        return [Part("similarity: unlearnable − learnable", needs=NEEDS)]
    sims = similarity_table(df[df.condition == cond], n_boot=200)
    if sims.empty or "p_vs_unlearnable" not in sims:
        return [Part("similarity: unlearnable − learnable", needs="grad_sketch.npz (passrate.grad_sim.enabled)")]
    row = sims[sims.group == LEARNABLE]
    un = sims[sims.group == UNLEARNABLE]
    if row.empty or un.empty or not (row.n.iloc[0] and un.n.iloc[0]):
        return [Part("similarity: unlearnable − learnable", needs="learnable and unlearnable prompts with gradients")]
    r = row.iloc[0]
    p = Part("gradient similarity to the rest: unlearnable − learnable", -float(r.diff_vs_unlearnable),
             n=int(un.n.iloc[0]), side="below", unit="prompts", runs=sorted(df[df.condition == cond].run.unique()),
             note=f"permutation p = {r.p_vs_unlearnable:.3g}")
    p.p = float(r.p_vs_unlearnable)
    return [p]


def permutation_rule(parts: list[Part]) -> Result:
    """Supported: unlearnable prompts' similarity is lower with permutation p < ALPHA; contradicted: higher with
    p < ALPHA; otherwise inconclusive (the difference has no interval: the per-prompt scores share pairwise
    terms, so the permutation p is the test)."""
    p = parts[0]
    if p.needs:
        return Result(INCONCLUSIVE, f"needs: {p.needs}", parts)
    pv = getattr(p, "p", math.nan)
    text = f"{p.name} {p.estimate:+.3g}, permutation p = {pv:.3g}"
    if pv < ALPHA:
        return Result(SUPPORTED if p.estimate < 0 else CONTRADICTED, text, parts)
    return Result(INCONCLUSIVE, text + f" ≥ {ALPHA}", parts)


register(Claim(
    "U2", "Unlearnable prompts' gradients are less similar to the rest", SOURCE,
    "mean gradient cosine to the rest, unlearnable − learnable (all-seeds classes, pooled cosine matrix)",
    "the RLVR condition with prompts.csv and grad_sketch.npz (Sweep.groups)",
    f"0; claim: below with permutation p < {ALPHA}", "lower gradient similarity for unlearnable examples (no CIs)",
    u2, rule=permutation_rule, order=121))


def u3(data: ClaimData) -> list[Part]:
    from harness.analysis.unlearn import add_sft_crosscheck, crosscheck_table

    df, cond = _frame(data)
    if df is None:
        return [over_seeds("share of RLVR-unlearnable learned by SFT", [], [], MOST, "above", NEEDS)]
    cross = crosscheck_table(add_sft_crosscheck(df))
    if cross.empty:
        return [over_seeds("share of RLVR-unlearnable learned by SFT", [], [], MOST, "above",
                           "SFT runs on the same prompts, adapter and seeds with prompts.csv")]
    c = cross[(cross.condition == cond) & (cross.seed != "all")]
    vals = [float(x) for x in c.fraction]
    runs = sorted(df[(df.pair == df[df.condition == cond].pair.iloc[0])].run.unique())
    return [over_seeds("share of RLVR-unlearnable prompts SFT learns (per seed)", vals, runs, MOST, "above",
                       None if np.isfinite(vals).any() else "seeds with RLVR-unlearnable prompts")]


register(Claim(
    "U3", "SFT on the same prompts learns the RLVR-unlearnable ones (the referee's control)", "referee of arXiv "
    "2605.16787", "per seed: share of RLVR-unlearnable prompts whose pass@1 after SFT (same adapter, seed) > τ",
    "the RLVR condition and its SFT twin (same adapter and settings), seed by seed",
    f"{MOST} (most of them); claim: above", "not measured in the paper (asked for by its referee)",
    u3, order=122))


def _learned(path, tau: float) -> dict[str, float]:
    """Per training prompt of a run's prompts.csv: 1.0 when its pass@1 at the end is above ``tau``."""
    import pandas as pd

    df = pd.read_csv(path / "prompts.csv")
    df = df[df["split"] == "train"]
    return {str(p): float(e > tau) for p, e in zip(df["prompt_id"], df["pass_end"])}


def u4(data: ClaimData) -> list[Part]:
    from harness.core.stats import paired_bootstrap

    # technique -> (first study, seed) -> run: runs retrained from different first studies pair only with their own
    by_tech: dict[str, dict[tuple[str, int], str]] = {}
    for r in data.table.to_dict("records"):
        run = data.sweep.run(r["run"])
        tech = run.get("retrain.technique")
        if tech and (run.path / "prompts.csv").exists():
            seed = int(r["seed"]) if np.isfinite(float(r["seed"])) else 0
            by_tech.setdefault(str(tech), {})[(str(run.get("retrain.from")), seed)] = r["run"]
    others = sorted(t for t in by_tech if t != PLAIN)
    if PLAIN not in by_tech or not others:
        return [Part("learned share: technique − plain retraining", null=RESOLVES, side="below", unit="prompts",
                     needs="a retrain study: harness train -m sweeps=unlearnable_retrain retrain.from=<first study>")]
    learned = {run: _learned(data.sweep.run(run).path, float(data.sweep.run(run).get("passrate.tau", 0.1)))
               for runs in by_tech.values() for run in runs.values()}
    plain_runs = by_tech[PLAIN]
    parts = []
    for tech in others:
        seeds = sorted(set(by_tech[tech]) & set(plain_runs))
        runs = [x for s in seeds for x in (by_tech[tech][s], plain_runs[s])]
        prompts = sorted(set.intersection(*(set(learned[x]) for x in runs))) if runs else []
        a = [np.mean([learned[by_tech[tech][s]][p] for s in seeds]) for p in prompts]
        b = [np.mean([learned[plain_runs[s]][p] for s in seeds]) for p in prompts]
        name = f"learned share: {tech} − plain retraining"
        if not prompts:
            parts.append(Part(name, null=RESOLVES, side="below", unit="prompts", runs=runs,
                              needs=f"{tech} and plain runs of the same seeds with prompts.csv"))
            continue
        d = paired_bootstrap(a, b)
        parts.append(Part(name, d.estimate, d.lo, d.hi, len(prompts), RESOLVES, "below", unit="prompts", runs=runs,
                          note=f"{len({s for _, s in seeds})} seeds; plain retraining learns {np.mean(b):.0%}, {tech} {np.mean(a):.0%}"))
    return parts


register(Claim(
    "U4", "More rollouts, a higher temperature, a higher lr or more visits do not make unlearnable prompts learnable",
    SOURCE, "per technique: share of a first study's unlearnable prompts learned (pass@1 at end > τ, mean over "
    "seeds) − that share under plain retraining, paired by prompt, bootstrap over prompts",
    "a retrain study (sweeps=unlearnable_retrain retrain.from=<first study>): each technique and plain, same seeds",
    f"{RESOLVES} (a technique that resolves it makes at least that share learnable beyond plain); claim: below "
    "for every technique",
    "no significant difference in the unlearnable subset when varying the sampling and update batch sizes "
    "(its appendix; lr 5e-7 to 1e-6); the paper reports no share per technique", u4, order=123))


def u5(data: ClaimData) -> list[Part]:
    import pandas as pd

    from harness.measure.classify import LEARNABLE, UNLEARNABLE

    g = data.group(lambda r: r.get("objective") == "rlvr" and plain(r) and bool(
        (data.sweep.run(r["run"]).path / "augment.csv").exists()))
    name = "similarity to the rest: augmented − original (unlearnable prompts, per seed)"
    if g.empty:
        return [over_seeds(name, [], [], RAISE, "below", "augment.csv (augment.enabled=true, or python -m "
                                                          "harness.measure.augment <sweep> after a passrate study)")]
    vals, ref, kinds = [], [], set()
    for run in g["run"]:
        df = pd.read_csv(data.sweep.run(run).path / "augment.csv")
        kinds |= set(df["kind"])
        per_prompt = df.groupby(["class", "prompt_id"])["delta"].mean()
        vals.append(float(per_prompt[UNLEARNABLE].mean()) if UNLEARNABLE in per_prompt.index else math.nan)
        ref.append(float(per_prompt[LEARNABLE].mean()) if LEARNABLE in per_prompt.index else math.nan)
    learn = np.nanmean(ref) if np.isfinite(ref).any() else math.nan
    note = f"kinds: {', '.join(sorted(kinds))}; learnable prompts' change {learn:+.3f} (mean over seeds)"
    return [over_seeds(name, vals, list(g["run"]), RAISE, "below",
                       None if np.isfinite(vals).any() else "runs with RLVR-unlearnable prompts in augment.csv",
                       note=note)]


register(Claim(
    "U5", "Data augmentation does not raise unlearnable prompts' gradient similarity", SOURCE,
    "per seed: mean over RLVR-unlearnable prompts of (mean cosine of an augmentation's gradient to the other "
    "prompts − the original's), gold-answer log-likelihood gradients at W0 (augment.csv)",
    "the RLVR condition with prompts.csv and augment.csv (Sweep.groups)",
    f"+{RAISE} (a rise below it is within the sketch's cosine error); claim: below",
    "gradient similarity of unlearnable examples stays low after rephrasing and decomposition into subproblems "
    "(no figure in the abstract)", u5, order=124))
