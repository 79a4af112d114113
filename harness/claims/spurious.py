"""*Spurious Rewards: Rethinking Training Signals in RLVR* (arXiv 2506.10947): SR1, RLVR paid a random or a
format-only reward still raises held-out accuracy.

The paper's effect is model-dependent (large for Qwen2.5-Math, none or negative for Llama3 and OLMo2, which it
explains by GRPO's clipping bias amplifying a high-prior behaviour), so a contradiction here says the small
base has no such behaviour to amplify, not that the paper is wrong about Qwen.
"""

from __future__ import annotations

from harness.claims.base import Claim, Part, register
from harness.claims.data import ClaimData, full_under, over_seeds

SOURCE = "Spurious Rewards (arXiv 2506.10947)"


def sr1(data: ClaimData) -> list[Part]:
    parts = []
    verifier = data.group(full_under("rlvr"))
    ref = (f"verifier-paid RLVR gain {verifier['gain_id'].mean():+.3f} (n={len(verifier)})"
           if len(verifier) and "gain_id" in verifier else "")
    for reward in ("random", "format"):
        g = data.group(full_under("rlvr", reward))
        runs = list(g["run"]) if len(g) else []
        needs = None if len(g) else f"full FT RLVR runs with objective.reward={reward} (≥ 2 seeds)"
        if runs and not data.has("gain_id", runs):
            needs = "eval.json (held-out accuracy of base and run)"
        # a reward that pays every rollout of a group the same gives GRPO no advantage: ΔW = 0 says nothing about
        # the claim (the format reward on a base that always writes a readable answer). ‖ΔW‖ from run.json, which
        # every run writes, or the analyzer's relative update
        still = [r for r in runs if data.value(r, "delta_norm") == 0 or data.value(r, "geo:rel_update") == 0]
        if not needs and still:
            needs = (f"a nonzero update (ΔW = 0 in {len(still)} of {len(runs)} runs): the {reward} reward paid every "
                     "rollout of each group the same, so GRPO had no advantage")
        vals = [] if needs else [data.value(r, "gain_id") for r in runs]
        parts.append(over_seeds(f"held-out gain under the {reward} reward", vals, runs, 0.0, "above", needs, ref))
    return parts


register(Claim(
    "SR1", "RLVR paid a random or a format-only reward still raises held-out accuracy", SOURCE,
    "held-out accuracy gain (run − base) of full FT RLVR paid objective.reward=random (rate 0.5) and =format, "
    "per seed; the verifier-paid gain beside them",
    "full FT, beta 0, fp32, RLVR with objective.reward random | format (claims arms full_random_reward, "
    "full_format_reward)",
    "gain 0; claim: above for both",
    "Qwen2.5-Math-7B, MATH-500, absolute points: +21.4 random, +13.8 format vs +29.1 ground truth (arXiv v1 "
    "abstract; a later version: +21.4, +16.4 vs +28.8); little or negative for Llama3 and OLMo2",
    sr1, order=125))
