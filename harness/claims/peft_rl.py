"""*Evaluating Parameter-Efficient Methods for RLVR* (arXiv 2512.23165, PeRL): PE1, DoRA beats
full fine-tuning under RLVR; PE2, the SVD-initialised PiSSA and MiLoRA collapse under RLVR; PE3, rank-1 LoRA and VeRA
hit an expressivity floor under RLVR (against L1's rank-1 parity).

PE2's "spectral collapse" has no published measure: the paper's abstract names it and blames "a fundamental
misalignment between principal-component updates and RL optimization"; PeRL's README (MikaStars39/PeRL, line 36)
says PiSSA/MiLoRA "experience significant performance degradation or total training collapse" because "these methods
force updates on principal components, while RLVR intrinsically operates in the off-principal regime", and its
released code holds no spectral analysis. So PE2 is judged on what those sentences state and the harness measures:
the collapse as held-out accuracy below plain LoRA's at the same rank, and the misalignment as PiSSA's ΔW energy in
W0's top-k singular subspace (``energy_<k>``, docs/metrics.md) above LoRA's."""

from __future__ import annotations

from harness.claims.base import Claim, Part, register
from harness.claims.data import ClaimData, Select, flat, full_under, matched_differences, over_seeds, plain
from harness.claims.path_not_taken import label, pair_logs

SOURCE = "Evaluating Parameter-Efficient Methods for RLVR (arXiv 2512.23165)"


def adapter_rlvr(name: str, r: float | None = None) -> Select:
    """Runs of adapter ``name`` (of rank ``r`` when given) under RLVR at the reference settings."""
    return lambda row: (row.get("adapter") == name and row.get("objective") == "rlvr" and plain(row)
                        and (r is None or row.get("r") == r))


def pe1(data: ClaimData) -> list[Part]:
    vals, runs, needs = matched_differences(data, adapter_rlvr("dora"), full_under("rlvr"), "acc_id",
                                            "DoRA and full FT under RLVR")
    return [over_seeds("held-out acc: DoRA − full (RLVR)", vals, runs, 0.0, "above", needs)]


LORA_R = 8  # PiSSA and MiLoRA are compared with plain LoRA at their own rank (conf/adapter/{pissa,milora}.yaml)


def pe2(data: ClaimData) -> list[Part]:
    lora = adapter_rlvr("lora", LORA_R)
    parts = []
    for name, adapter in (("PiSSA", "pissa"), ("MiLoRA", "milora")):
        vals, runs, needs = matched_differences(data, adapter_rlvr(adapter), lora, "acc_id",
                                                f"{name} and LoRA r={LORA_R} under RLVR")
        parts.append(over_seeds(f"held-out acc: {name} − LoRA r={LORA_R} (RLVR)", vals, runs, 0.0, "below", needs))
    col = f"geo:energy_{label(data, 'energy')}"
    pairs = data.seed_matched(adapter_rlvr("pissa"), lora)
    runs = flat(pairs)
    needs = (f"PiSSA and LoRA r={LORA_R} under RLVR, same seeds (≥ 2)" if not pairs
             else data.geo_needs(runs, col))
    vals = [] if needs else pair_logs(data, pairs, col)
    parts.append(over_seeds(f"log(ΔW energy in W0's top-k) PiSSA / LoRA r={LORA_R} (RLVR)", vals, runs, 0.0,
                            "above", needs, note=col.removeprefix("geo:")))
    return parts


def pe3(data: ClaimData) -> list[Part]:
    parts = []
    for name, pred in (("LoRA r=1", adapter_rlvr("lora", 1)), ("VeRA", adapter_rlvr("vera"))):
        vals, runs, needs = matched_differences(data, pred, full_under("rlvr"), "acc_id",
                                                f"{name} and full FT under RLVR")
        parts.append(over_seeds(f"held-out acc: {name} − full (RLVR)", vals, runs, 0.0, "below", needs))
    return parts


register(Claim(
    "PE1", "DoRA beats full fine-tuning under RLVR (held-out accuracy above)", SOURCE,
    "held-out accuracy, DoRA − full FT, under RLVR, seed-matched",
    "DoRA (claims arm dora) and full FT (claims arm full) under RLVR, beta 0, fp32",
    "0; claim: above",
    "DoRA 46.6 % vs full FT 44.9 % average accuracy (DeepSeek-R1-Distill-Qwen-1.5B, DAPO; PeRL README, line 33)",
    pe1, order=71))

register(Claim(
    "PE2", "PiSSA and MiLoRA collapse under RLVR: principal-component updates misaligned with RL", SOURCE,
    "held-out accuracy, PiSSA − LoRA and MiLoRA − LoRA (same rank), under RLVR, seed-matched; "
    "log ratio of ΔW's energy share in W0's top-k singular subspace, PiSSA / LoRA",
    "PiSSA, MiLoRA and LoRA r=8 (claims arms pissa, milora, lora_r8) under RLVR, beta 0, fp32",
    "0; claim: accuracies below, PiSSA's principal energy above",
    "avg accuracy PiSSA 0.2 %, MiLoRA 18.0 % vs LoRA 42.5 %, full FT 44.9 % (DeepSeek-R1-Distill-Qwen-1.5B, DAPO; "
    "third-party summary of the paper's table, not checked against the paper); no measure of the collapse is "
    "published", pe2, order=72))

register(Claim(
    "PE3", "Rank-1 LoRA and VeRA fall short of full fine-tuning under RLVR (an expressivity floor)", SOURCE,
    "held-out accuracy, LoRA r=1 − full FT and VeRA − full FT, under RLVR, seed-matched",
    "LoRA r=1 (claims arm lora_r1), VeRA (claims arm vera) and full FT under RLVR, beta 0, fp32",
    "0; claim: below for both (L1 predicts parity for rank 1)",
    "avg accuracy rank-1 LoRA 40.5 %, VeRA 40.7 % vs full FT 44.9 % (1.5B, DAPO; third-party summaries of the "
    "paper's tables, not checked against the paper)",
    pe3, order=73))
