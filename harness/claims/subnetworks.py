"""*Reinforcement Learning Finetunes Small Subnetworks* (arXiv 2505.11711): S1."""

from __future__ import annotations

from harness.claims.base import Claim, Part, register
from harness.claims.data import ClaimData, main_task, over_seeds
from harness.claims.path_not_taken import cross_parts

SOURCE = "RL Finetunes Small Subnetworks (arXiv 2505.11711)"
MOST = 0.5  # "most entries unchanged": more than half
# "nearly full rank": the paper reports 99 % of the maximal numerical rank; 0.9 leaves room for the fp32
# rounding noise our merged ΔW carries (docs/metrics.md: it inflates the numerical rank, never lowers it)
FULL_RANK = 0.9


def _rlvr_full(dtype: str):
    return lambda r: (r.get("adapter") == "full" and r.get("objective") == "rlvr" and r.get("beta") == 0
                      and main_task(r)
                      and str(r.get("dtype")) == dtype)


def s1(data: ClaimData) -> list[Part]:
    pred, dtype = _rlvr_full("bfloat16"), "bfloat16"
    if data.group(pred).empty:  # the paper measured bf16 weights; fall back to fp32 training, said so
        pred, dtype = _rlvr_full("float32"), "float32"
    return s1_parts(data, pred, f"trained in {dtype}", "RLVR full FT (bf16-trained preferred, ≥ 2 seeds)")


def s1_pairs(data: ClaimData) -> list[Part]:
    """Released pairs: |Δ| ≤ 1e-5 on the stored weights, as sparsity_in_rl computes it (stored in bf16, this
    is "unchanged in bf16"); the storage dtypes are noted."""
    pred = lambda r: r.get("objective") == "rlvr"  # noqa: E731
    rows = data.select(pred)
    stored = sorted({f"{r.base_dtype}→{r.tuned_dtype}" for r in rows.itertuples()}) if len(rows) else []
    return s1_parts(data, pred, f"stored {', '.join(stored)}" if stored else "", "≥ 2 RLVR pairs in this group",
                    "≥ 2 RLVR pairs from one base")


def s1_parts(data: ClaimData, pred, note: str, what: str, cross_what: str = "RLVR full FT with ≥ 2 seeds"
             ) -> list[Part]:
    g = data.group(pred)
    runs = list(g["run"]) if len(g) else []
    needs = None if runs else what
    if runs:
        needs = data.geo_needs(runs, "geo:sparsity_abs")
    sparsity = over_seeds("RLVR sparsity |Δ|≤1e-5", [] if needs else [data.value(r, "geo:sparsity_abs") for r in runs],
                          runs, MOST, "above", needs, note)
    rank = over_seeds("RLVR numerical-rank fraction of ΔW", [] if needs else
                      [data.value(r, "geo:num_rank_frac") for r in runs], runs, FULL_RANK, "above", needs)
    if runs and not needs:
        rank.note = f"effective rank beside it: {g['geo:eff_rank'].mean():.3g}" if "geo:eff_rank" in g else ""
    overlap = cross_parts(data, pred, cross_what)[0]
    return [sparsity, overlap, rank]


register(Claim(
    "S1", "RLVR leaves most entries unchanged, its changed sets overlap across seeds, and its update is nearly "
    "full rank", SOURCE,
    "sparsity |Δ| ≤ 1e-5; seed-pair Jaccard of update masks − chance; numerical-rank fraction (eff. rank beside)",
    "RLVR full FT (bf16-trained condition if present, else fp32), Sweep.groups / Sweep.pairs('seed')",
    f"sparsity {MOST}; Jaccard excess 0; rank fraction {FULL_RANK}; claim: above each",
    "GRPO 68.5–86 % unchanged at |Δ| ≤ 1e-5 (bf16); overlap 60.5 % vs 36.7 % random; 99 % of max numerical rank",
    s1, order=80, pairs=s1_pairs))
