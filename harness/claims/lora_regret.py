"""*LoRA Without Regret* (Thinking Machines, 2025): L1, rank-1 LoRA matches full fine-tuning under RL."""

from __future__ import annotations

import math

from harness.claims.base import INCONCLUSIVE, Claim, Part, Result, equivalent, estimated, margin_ci, register
from harness.claims.data import ClaimData, flat, full_ref, over_seeds, plain

SOURCE = "LoRA Without Regret (Thinking Machines, 2025)"
# "Matches" is an equivalence claim: |Δ accuracy| within a margin. 0.05 absolute held-out accuracy: below the
# 95 % half-width of one 200-prompt accuracy near 0.5 (1.96·√(0.25/200) ≈ 0.069), so a mean over seeds inside
# ±0.05 is as close as the study can tell two settings apart.
MARGIN = 0.05
# "~10× the learning rate": the study's LoRA/full lr ratio must lie in this band (their fit 9.8, short runs ~15×)
LR_RATIO = (5.0, 20.0)


def l1(data: ClaimData) -> list[Part]:
    pairs = data.seed_matched(lambda r: r.get("adapter") == "lora" and r.get("r") == 1 and plain(r)
                              and r.get("objective") == "rlvr",
                              lambda r: full_ref(r) and r.get("objective") == "rlvr")
    runs = flat(pairs)
    needs = None if pairs else "lora r=1 and full FT under RLVR, same seeds (≥ 2)"
    if pairs and not data.has("acc_id", runs):
        needs = "eval.json (held-out accuracy)"
    vals = [] if needs else [data.value(a, "acc_id") - data.value(b, "acc_id") for a, b in pairs]
    ratios = [data.value(a, "lr") / data.value(b, "lr") for a, b in pairs if data.value(b, "lr") > 0]
    note = f"lr ratio lora/full = {sum(ratios) / len(ratios):.3g}" if ratios else ""
    part = over_seeds("held-out acc: LoRA r=1 − full (RLVR)", vals, runs, 0.0, "within", needs, note)
    part.lr_ratio = sum(ratios) / len(ratios) if ratios else math.nan
    return [part]


def equivalence(parts: list[Part]) -> Result:
    """Supported: the interval lies inside ±MARGIN (and the lr ratio is ~10×); contradicted: it lies wholly
    outside; inconclusive: it straddles a margin, n < 2, or the lr ratio is off."""
    p = parts[0]
    ratio = getattr(p, "lr_ratio", math.nan)
    if estimated(p) and not (LR_RATIO[0] <= ratio <= LR_RATIO[1]):
        return Result(INCONCLUSIVE, f"{margin_ci(p, MARGIN)}; lr ratio {ratio:.3g} not ~10× (band {LR_RATIO})", parts)
    return Result(*equivalent(p, MARGIN), parts)


register(Claim(
    "L1", "Rank-1 LoRA matches full fine-tuning under RL at ~10× the learning rate", SOURCE,
    "held-out accuracy of LoRA r=1 minus full FT under RLVR (lr ratio checked from the resolved configs)",
    "lora r=1 and full FT RLVR conditions (Sweep.groups), matched by seed",
    f"equivalence margin ±{MARGIN} accuracy; lr ratio in {LR_RATIO}",
    "rank-1 matches full FT under RL; fitted LoRA/full lr multiplier 9.8 (short runs ~15×)",
    l1, rule=equivalence, order=70))
