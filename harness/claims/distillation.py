"""*On the Geometry of On-Policy Distillation* (arXiv 2606.07082, and its companion 2606.13657): OD1, on-policy
distillation (``objective=gkd``) lies between SFT and RLVR in update sparsity and in subspace rotation.

Position per seed: p = (m_gkd − m_sft) / (m_rlvr − m_sft) for a measure m; "between" is 0 < p < 1.
"""

from __future__ import annotations

import math

from harness.claims.base import (
    CONTRADICTED,
    INCONCLUSIVE,
    SUPPORTED,
    Claim,
    Part,
    Result,
    estimated,
    judge,
    register,
)
from harness.claims.data import ClaimData, div, full_under, over_seeds
from harness.claims.path_not_taken import label

SOURCE = "On the Geometry of On-Policy Distillation (arXiv 2606.07082)"


def od1(data: ClaimData) -> list[Part]:
    sft, rlvr, gkd = (data.group(full_under(o)) for o in ("sft", "rlvr", "gkd"))
    by_seed = [dict(zip(g["seed"], g["run"])) if len(g) else {} for g in (sft, rlvr, gkd)]
    seeds = sorted(set(by_seed[0]) & set(by_seed[1]) & set(by_seed[2]))
    triples = [(by_seed[0][s], by_seed[1][s], by_seed[2][s]) for s in seeds]
    runs = [r for t in triples for r in t]
    needs = None if triples else "full FT under sft, rlvr and gkd, same seeds (≥ 2)"
    if triples:
        needs = data.geo_needs(runs)
    parts = []
    for name, col in (("update sparsity (bf16 criterion)", "geo:sparsity_bf16"),
                      ("mean principal angle", f"geo:angle_mean_{label(data, 'angle_mean')}")):
        why = needs or (None if data.has(col, runs) else f"{col} (python -m harness.analyze <sweep>)")
        vals = [] if why else [div(data.value(g, col) - data.value(s, col), data.value(r, col) - data.value(s, col))
                               for s, r, g in triples]
        vals = [v for v in vals if math.isfinite(v)]
        parts.append(over_seeds(f"position of GKD between SFT (0) and RLVR (1): {name}", vals, runs, 0.0,
                                "between", why))
    return parts


def between(parts: list[Part]) -> Result:
    """Supported: every part's interval inside (0, 1); contradicted: some part's interval wholly outside it (at
    or below 0, at or above 1: touching the bound counts as outside, as :func:`judge` treats the null); else
    inconclusive."""
    reasons, verdicts = [], []
    for p in parts:
        if not estimated(p):
            v, why = judge(p)
        else:
            why = f"{p.name} {p.estimate:.3g} [{p.lo:.3g}, {p.hi:.3g}] vs (0, 1)"
            v = (SUPPORTED if 0 < p.lo and p.hi < 1 else CONTRADICTED if p.hi <= 0 or p.lo >= 1 else INCONCLUSIVE)
        verdicts.append(v)
        reasons.append(why)
    if CONTRADICTED in verdicts:
        return Result(CONTRADICTED, "; ".join(r for v, r in zip(verdicts, reasons) if v == CONTRADICTED), parts)
    if all(v == SUPPORTED for v in verdicts):
        return Result(SUPPORTED, "; ".join(reasons), parts)
    return Result(INCONCLUSIVE, "; ".join(r for v, r in zip(verdicts, reasons) if v != SUPPORTED), parts)


register(Claim(
    "OD1", "On-policy distillation lies between SFT and RLVR in update sparsity and subspace rotation", SOURCE,
    "per seed: (m_gkd − m_sft)/(m_rlvr − m_sft) for m = bf16 update sparsity and the mean principal angle of "
    "W0's top-k subspaces",
    "full FT, beta 0, fp32 under sft, rlvr and gkd (objective=gkd with objective.teacher), same seeds",
    "between 0 (SFT) and 1 (RLVR); claim: inside (0, 1) for both",
    "on-policy distillation's updates are sparse and off-principal like RLVR's, less so (numbers not checked "
    "here)",
    od1, rule=between, order=127))
