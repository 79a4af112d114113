"""*Evaluating Parameter-Efficient Methods for RLVR* (arXiv 2512.23165, PeRL): PE1, DoRA does at least as well as
full fine-tuning under RLVR; PE3, rank-1 LoRA and VeRA hit an expressivity floor under RLVR (against L1's
rank-1 parity). PE2 (PiSSA/MiLoRA spectral collapse) is not built: it needs PeRL's own measure of collapse."""

from __future__ import annotations

from harness.claims.base import Claim, Part, register
from harness.claims.data import ClaimData, full_under, matched_differences, over_seeds, plain

SOURCE = "Evaluating Parameter-Efficient Methods for RLVR (arXiv 2512.23165)"


def adapter_rlvr(name: str, r: float | None = None):
    return lambda row: (row.get("adapter") == name and row.get("objective") == "rlvr" and plain(row)
                        and (r is None or row.get("r") == r))


def pe1(data: ClaimData) -> list[Part]:
    vals, runs, needs = matched_differences(data, adapter_rlvr("dora"), full_under("rlvr"), "acc_id",
                                            "DoRA and full FT under RLVR")
    return [over_seeds("held-out acc: DoRA − full (RLVR)", vals, runs, 0.0, "above", needs)]


def pe3(data: ClaimData) -> list[Part]:
    parts = []
    for label, pred in (("LoRA r=1", adapter_rlvr("lora", 1)), ("VeRA", adapter_rlvr("vera"))):
        vals, runs, needs = matched_differences(data, pred, full_under("rlvr"), "acc_id",
                                                f"{label} and full FT under RLVR")
        parts.append(over_seeds(f"held-out acc: {label} − full (RLVR)", vals, runs, 0.0, "below", needs))
    return parts


register(Claim(
    "PE1", "DoRA does at least as well as full fine-tuning under RLVR", SOURCE,
    "held-out accuracy, DoRA − full FT, under RLVR, seed-matched",
    "DoRA (claims arm dora) and full FT (claims arm full) under RLVR, beta 0, fp32",
    "0; claim: above",
    "DoRA's average accuracy above full FT's over their benchmarks at 1.5B/7B (numbers not checked here)",
    pe1, order=71))

register(Claim(
    "PE3", "Rank-1 LoRA and VeRA fall short of full fine-tuning under RLVR (an expressivity floor)", SOURCE,
    "held-out accuracy, LoRA r=1 − full FT and VeRA − full FT, under RLVR, seed-matched",
    "LoRA r=1 (claims arm lora_r1), VeRA (claims arm vera) and full FT under RLVR, beta 0, fp32",
    "0; claim: below for both (L1 predicts parity for rank 1)",
    "rank-1 LoRA and VeRA below the other PEFT methods and full FT (numbers not checked here)",
    pe3, order=72))
