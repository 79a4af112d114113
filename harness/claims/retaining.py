"""*Retaining by Doing* (arXiv 2510.18874): RD1, RL forgets less than SFT because its data is on-policy, so SFT
on the model's own correct samples (``objective=rft``) forgets as little as RLVR."""

from __future__ import annotations

from harness.claims.base import Claim, Part, Result, combine, equivalent, judge, register
from harness.claims.data import ClaimData, full_under, matched_differences, over_seeds

SOURCE = "Retaining by Doing (arXiv 2510.18874)"
# "As little as RLVR" is an equivalence in OOD change: the same ±0.05 absolute accuracy as L1
# (harness/claims/lora_regret.py: below one 200-prompt accuracy's 95 % half-width).
MARGIN = 0.05


def rd1(data: ClaimData) -> list[Part]:
    # OOD drop of SFT minus that of on-policy SFT: change_ood(rft) − change_ood(sft) > 0 when rft forgets less
    less, runs_l, need_l = matched_differences(data, full_under("rft"), full_under("sft"), "change_ood",
                                               "full FT under rft and sft")
    same, runs_s, need_s = matched_differences(data, full_under("rft"), full_under("rlvr"), "change_ood",
                                               "full FT under rft and rlvr")
    return [over_seeds("OOD change: on-policy SFT − SFT", less, runs_l, 0.0, "above", need_l),
            over_seeds("OOD change: on-policy SFT − RLVR", same, runs_s, 0.0, "within", need_s)]


def rule(parts: list[Part]) -> Result:
    """Supported: on-policy SFT forgets less than SFT (interval above 0) and its OOD change is within ±MARGIN of
    RLVR's; contradicted if either part is; else inconclusive."""
    verdict, reason = combine([judge(parts[0]), equivalent(parts[1], MARGIN)])
    return Result(verdict, reason, parts)


register(Claim(
    "RD1", "On-policy SFT (on the model's own correct samples) forgets as little as RLVR, and less than SFT",
    SOURCE,
    "OOD accuracy change (run − base, eval.ood tasks), seed-matched: on-policy SFT − SFT; on-policy SFT − RLVR",
    "full FT, beta 0, fp32 under rft (claims arm full_rft), sft and rlvr (claims arm full)",
    f"first 0, claim above; second: equivalence margin ±{MARGIN} accuracy",
    "RL's forgetting advantage comes from on-policy data, not the KL term or the advantage (numbers not checked "
    "here)",
    rd1, rule=rule, order=126))
