"""*RLVR changes propensity, not lability* (essay in the seeds): E1 (eNTK rotation), E1.B (the same per batch, along
the update path) and E2 (update rank)."""

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


# --- E1.B: per batch --------------------------------------------------------------------------------------


def e1b(data: ClaimData) -> list[Part]:
    pairs = data.objective_pairs(full_ref)
    runs = flat(pairs)
    needs = None if pairs else "full FT under sft and rlvr, same seeds (≥ 2)"
    if pairs and not data.has("entk_step_angle_per_rel", runs):
        needs = "entk_steps.json (trajectory.every > 0, trajectory.sketch=false, trajectory.entk=true)"
    vals = [] if needs else [log_ratio(data.value(a, "entk_step_angle_per_rel"), data.value(b, "entk_step_angle_per_rel"))
                             for a, b in pairs]
    n = [int(data.value(r, "entk_step_intervals")) for r in runs] if not needs else []
    note = f"{min(n)}–{max(n)} intervals per run" if n else ""
    return [over_seeds("log(per-interval eNTK angle per unit update) RLVR/SFT", vals, runs, 0.0, "below", needs, note)]


register(Claim(
    "E1.B", "E1 holds per batch: along the update path RL rotates the eNTK less than SFT per unit of movement",
    SOURCE + ", §3",
    "log ratio RLVR/SFT of the mean, over trajectory intervals, of the eNTK mean principal angle between "
    "consecutive snapshots per unit interval update ‖ΔW_t' − ΔW_t‖/‖W0‖",
    "full FT, beta 0, fp32: Sweep.pairs('objective'), entk_steps.json (trajectory.entk=true)",
    "log ratio 0; claim: below",
    "essay: \"there are definitely still qualitative differences at the per-batch level\" (no numbers)",
    e1b, order=92))


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
    "essay: no numbers (cites the claim; asks for entropy rank, not the naive rank)", e2, order=93,
    pairs=e2_pairs))
