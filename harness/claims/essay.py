"""*RLVR changes propensity, not lability* (essay in the seeds): E1 (eNTK rotation) and E2 (update rank)."""

from __future__ import annotations

import numpy as np

from harness.claims.base import Claim, Part, register
from harness.claims.data import (
    ClaimData,
    div,
    flat,
    full_ref,
    log_ratio,
    logs,
    objective_sides,
    over_seeds,
    two_groups,
)

SOURCE = "RLVR changes propensity, not lability (essay)"


def e1(data: ClaimData) -> list[Part]:
    pairs = data.objective_pairs(full_ref)
    runs = flat(pairs)
    needs = None if pairs else "full FT under sft and rlvr, same seeds (≥ 2)"
    if pairs and not data.has("entk_mean_angle_deg", runs):
        needs = "entk.json (entk.enabled=true)"
    elif pairs:
        needs = data.geo_needs(runs, "geo:rel_update")

    def per_size(r: str) -> float:
        return div(data.value(r, "entk_mean_angle_deg"), data.value(r, "geo:rel_update"))

    vals = [] if needs else [log_ratio(per_size(a), per_size(b)) for a, b in pairs]
    eig = [] if needs else [log_ratio(div(data.value(a, "entk_eig_rel_change"), data.value(a, "geo:rel_update")),
                                      div(data.value(b, "entk_eig_rel_change"), data.value(b, "geo:rel_update")))
                            for a, b in pairs]
    note = f"eigenvalue rescaling per unit update, log RLVR/SFT: {np.nanmean(eig):+.3g}" if np.isfinite(eig).any() else ""
    return [over_seeds("log(eNTK mean angle per unit update) RLVR/SFT", vals, runs, 0.0, "below", needs, note)]


register(Claim(
    "E1", "RL rescales eNTK eigenvalues while SFT rotates its eigenvectors", SOURCE,
    "log ratio RLVR/SFT of the eNTK mean principal angle per unit relative update (‖ΔW‖/‖W0‖)",
    "full FT, beta 0, fp32: Sweep.pairs('objective'), entk.json + geometry rel_update",
    "log ratio 0; claim: below", "essay: no numbers (a mental model)", e1, order=90))


# --- E2: the update's effective rank ------------------------------------------------------------------------

RANK_NOTE = "effective (entropy) rank, as the essay asks: the naive numerical rank counts rounding noise"


def e2(data: ClaimData) -> list[Part]:
    pairs = data.objective_pairs(full_ref)
    runs = flat(pairs)
    needs = None if pairs else "full FT under sft and rlvr, same seeds (≥ 2)"
    if pairs:
        needs = data.geo_needs(runs, "geo:eff_rank")
    vals = [] if needs else [log_ratio(data.value(a, "geo:eff_rank"), data.value(b, "geo:eff_rank"))
                             for a, b in pairs]
    return [over_seeds("log(ΔW effective rank) RLVR/SFT", vals, runs, 0.0, "below", needs, RANK_NOTE)]


def e2_pairs(data: ClaimData) -> list[Part]:
    a, b, needs = objective_sides(data)
    return [two_groups("log(ΔW effective rank) RLVR − SFT", logs(data, a, "geo:eff_rank"),
                       logs(data, b, "geo:eff_rank"), a + b, 0.0, "below", needs, RANK_NOTE)]


register(Claim(
    "E2", "RLVR's updates are lower-rank than SFT's", SOURCE + ", §1.c",
    "log ratio RLVR/SFT of ΔW's effective rank exp(H(σ/Σσ)) (whole model, parameter-weighted over matrices)",
    "full FT, beta 0, fp32: Sweep.pairs('objective'), geometry_summary.json; pairs: RLVR vs SFT pairs of a group",
    "log ratio 0; claim: below",
    "essay: no numbers (cites the claim; asks for entropy rank, not the naive rank)", e2, order=91,
    pairs=e2_pairs))
