"""*Does RL really incentivize reasoning beyond the base model?* (arXiv 2504.13837): Y1, from ``passk.json``."""

from __future__ import annotations

import numpy as np

from harness.claims.base import (
    CONTRADICTED,
    INCONCLUSIVE,
    SUPPORTED,
    Claim,
    Part,
    Result,
    combine,
    judge,
    register,
)
from harness.claims.data import ClaimData, full_ref, over_seeds
from harness.core.stats import paired_bootstrap

SOURCE = "Does RL incentivize reasoning beyond the base? (arXiv 2504.13837)"
NEEDS = "passk.json (pass@k of base and run, n samples per held-out prompt)"


def _prompt_parts(data: ClaimData, run: str) -> list[Part] | None:
    """One seed: paired bootstrap over prompts of Δpass@1, Δpass@n and the shrink (Δpass@n − Δpass@1)."""
    from harness.measure.passk import pass_at_k

    pk = data.sweep.run(run).json("passk.json") or {}
    prompts = pk.get("prompts") or []
    if len(prompts) < 2:
        return None
    n = int(prompts[0]["n"])
    p1r, p1b, pnr, pnb = (np.array([pass_at_k(n, int(p[c]), k) for p in prompts])
                          for c, k in (("c_run", 1), ("c_base", 1), ("c_run", n), ("c_base", n)))
    out = []
    for name, a, b, side in (("Δpass@1 run − base", p1r, p1b, "above"), (f"Δpass@{n} run − base", pnr, pnb, "below"),
                             ("Δpass@n − Δpass@1", pnr - p1r, pnb - p1b, "below")):
        d = paired_bootstrap(a, b)
        out.append(Part(name, d.estimate, d.lo, d.hi, d.n, 0.0, side, unit="prompts", runs=[run]))
    return out


def y1(data: ClaimData) -> list[Part]:
    g = data.group(lambda r: full_ref(r) and r.get("objective") == "rlvr")
    runs = list(g["run"]) if len(g) else []
    needs = None if runs else "RLVR full FT runs"
    if runs and not data.has("passn_run", runs):
        needs = NEEDS
    if not needs and len(runs) == 1:
        parts = _prompt_parts(data, runs[0])
        if parts:
            parts[1].note = f"one seed: paired bootstrap over prompts; crossover k = {data.value(runs[0], 'crossover_k'):g}"
            return [parts[1], parts[0], parts[2]]
    v = {c: [] if needs else [data.value(r, c) for r in runs]
         for c in ("pass1_run", "pass1_base", "passn_run", "passn_base", "crossover_k")}
    d1 = [a - b for a, b in zip(v["pass1_run"], v["pass1_base"])]
    dn = [a - b for a, b in zip(v["passn_run"], v["passn_base"])]
    cross = [c for c in v["crossover_k"] if np.isfinite(c)]
    note = (f"crossover k in {len(cross)}/{len(runs)} seeds" + (f" (mean {np.mean(cross):.3g})" if cross else "")
            if runs and not needs else "")
    return [over_seeds("Δpass@n run − base", dn, runs, 0.0, "below", needs, note),
            over_seeds("Δpass@1 run − base", d1, runs, 0.0, "above", needs),
            over_seeds("Δpass@n − Δpass@1", [a - b for a, b in zip(dn, d1)], runs, 0.0, "below", needs)]


def rule(parts: list[Part]) -> Result:
    """Supported: RL raises pass@1 (Δ1 > 0), the gap shrinks at large k (Δn − Δ1 < 0) and no distinguishable
    advantage of the run remains at k = n (Δn's lower bound ≤ 0). Contradicted: RL does not raise pass@1
    (Δ1 < 0), or the run stays distinguishably ahead at k = n while the gap does not shrink. Else inconclusive."""
    dn, d1, shrink = parts
    v1, r1 = judge(d1)
    vs, rs = judge(shrink)
    if v1 == INCONCLUSIVE and (d1.needs or d1.n < 2 or not d1.finite):
        return Result(INCONCLUSIVE, r1, parts)
    if v1 == CONTRADICTED:
        return Result(CONTRADICTED, r1, parts)
    ahead = dn.finite and dn.lo > 0
    if ahead and vs != SUPPORTED:
        return Result(CONTRADICTED, f"{dn.name} {dn.estimate:.3g} [{dn.lo:.3g}, {dn.hi:.3g}] > 0; {rs}", parts)
    if v1 == SUPPORTED and vs == SUPPORTED and not ahead:
        return Result(SUPPORTED, f"{r1}; {rs}; {dn.name} lower bound {dn.lo:.3g} ≤ 0", parts)
    verdict, reason = combine([(v1, r1), (vs, rs)])
    return Result(INCONCLUSIVE, reason or f"{dn.name}: run still ahead at k = n, gap shrinking", parts)


register(Claim(
    "Y1", "RL raises pass@1 but the base catches up or overtakes at large k", SOURCE,
    "Δpass@k (run − base, unbiased estimator from n samples) at k = n, at k = 1, and its shrink; crossover k",
    "RLVR full FT condition (Sweep.groups), passk.json per run; mean over seeds (one seed: bootstrap over prompts)",
    "0; claim: Δ1 above, shrink below, Δn not above",
    "base overtakes RL models at large k (curves cross at k in the tens to hundreds on math benchmarks)",
    y1, rule=rule, order=100))
