"""*ProRL* (arXiv 2505.24864): PR1, prolonged RLVR solves prompts the base never solves, however often sampled.

The base's n samples per held-out prompt (``passk.json``) choose the prompts *and* measure them, so "the run
solves prompts the base never solved" is biased for the claim (regression to the mean: a prompt missed n times
may still have a nonzero rate). The split-half estimator removes that: select the prompts on the first half of
the base's samples (all h = n/2 wrong) and compare the run's pass@h with the base's on the *other* half. From
the counts alone (samples are exchangeable): a prompt with c correct of n has its first half all wrong with
probability w = C(n−c, h)/C(n, h), and then the other half holds all c correct (base pass@h = 1[c > 0]); the
run's pass@h is the unbiased estimator from its own n samples. Per run: Σ w·(run pass@h − 1[c > 0]) / Σ w.
"""

from __future__ import annotations

from math import comb

from harness.claims.base import Claim, Part, register
from harness.claims.data import ClaimData, full_under, over_seeds
from harness.measure.passk import pass_at_k


def split_half(prompts: list[dict]) -> tuple[float, float]:
    """(run pass@h − base pass@h on the held-out half, expected number of prompts selected) over the prompts
    whose first half of base samples was all wrong; NaN when none could be."""
    num = den = 0.0
    for p in prompts:
        n, c, r = int(p["n"]), int(p["c_base"]), int(p["c_run"])
        h = n // 2
        if h < 1:
            continue
        w = comb(n - c, h) / comb(n, h)
        num += w * (pass_at_k(n, r, h) - float(c > 0))
        den += w
    return (num / den if den > 0 else float("nan")), den


def pr1(data: ClaimData) -> list[Part]:
    rows = data.select(full_under("rlvr"))
    steps_of = {r: int(data.sweep.run(r).get("objective.steps") or 0) for r in rows["run"]} if len(rows) else {}
    longest = max(steps_of.values(), default=0)
    # "prolonged": the condition of the longest runs (the one with most seeds among those), not the largest one
    conditions = [list(g["run"]) for _, g in data.sweep.groups(rows)] if len(rows) else []
    runs = max(([r for r in c if steps_of[r] == longest] for c in conditions), key=len, default=[])
    vals, sizes = [], []
    for r in runs:
        pk = data.sweep.run(r).json("passk.json") or {}
        if pk.get("prompts"):
            v, m = split_half(pk["prompts"])
            vals.append(v)
            sizes.append(m)
    needs = None if runs else "full FT RLVR runs (≥ 2 seeds)"
    if runs and len(vals) < len(runs):
        needs = "passk.json with per-prompt counts (passk.enabled=true)"
    shorter = sorted(set(steps_of.values()) - {longest})
    note = (f"{sum(sizes) / len(sizes):.1f} base-unsolved prompts per run (expected); RLVR steps {longest}"
            + (f" (runs of {shorter} steps left out)" if shorter else "") if sizes else "")
    return [over_seeds("pass@h on base-unsolved prompts: run − base (split-half)", [] if needs else vals, runs,
                       0.0, "above", needs, note)]


register(Claim(
    "PR1", "Prolonged RLVR solves prompts the base never solves, however often it is sampled", "ProRL (arXiv 2505.24864)",
    "per run: on held-out prompts the base's first n/2 samples all missed, the run's pass@(n/2) minus the base's "
    "on its other n/2 samples (split-half, from passk.json's counts: no selection bias)",
    "full FT RLVR, the longest run of the sweep's reference condition (passk.enabled=true)",
    "0; claim: above",
    "\"many tasks where the base model fails to produce any correct solutions regardless of the amount of "
    "sampling, while our RL-trained model achieves 100% pass rates\" (Nemotron-Research-Reasoning-Qwen-1.5B, "
    "as quoted in the seeds' essay)",
    pr1, order=128))
