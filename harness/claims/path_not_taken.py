"""*The Path Not Taken: RLVR Provably Learns Off the Principals* (arXiv 2511.08567): P1–P6.

The paper shows drift, rotation and off-principal alignment in figures only; its numbers are RLVR update
sparsity 36–92 % vs SFT 0.6–18.8 % (bf16 criterion) and bf16 update-mask Jaccard 0.55–0.60 vs random
0.37–0.47 over 5 runs. The tables of the summary in the seeds (drift 0.08 vs 0.42, rotation 2.1° vs 12.3°,
PEFT deltas) are not in the paper and are labelled so.
"""

from __future__ import annotations

import pandas as pd

from harness.claims.base import Claim, Part, register
from harness.claims.data import (
    ClaimData,
    any_pair,
    div,
    flat,
    full_ref,
    log_ratio,
    logs,
    main_task,
    objective_sides,
    over_seeds,
    plain,
    two_groups,
    ungated,
)

SOURCE = "The Path Not Taken (arXiv 2511.08567)"
NEEDS_GEO = "geometry_summary.json (python -m harness.analyze <sweep>)"
NEEDS_PAIRS = "full fine-tuning under sft and rlvr, same seeds and settings (≥ 2 seeds)"
# P5 Gate III: "most" of the apparent (bf16-criterion) sparsity = more than half of it
MOST = 0.5
# The apparent sparsity of a run trained in fp32: the relative 1e-3 rule, as every verdict measured so far
# (results/claims_measured.md) read it; the bf16-cast criterion (the papers') is given beside it in the note.
APPARENT = "sparsity_rel1e3"
# P6: held-out accuracy ratio needs a nonzero full-FT accuracy
ALIGNED_K = ("kgap16", "k16")


def _rlvr(row: dict) -> bool:
    return row.get("objective") == "rlvr"


def label(data: ClaimData, stem: str) -> str:
    """The k label to read: the gap-aware ``kgap16`` when the summaries have it, else ``k16``."""
    for lab in ALIGNED_K:
        if f"geo:{stem}_{lab}" in data.table and data.table[f"geo:{stem}_{lab}"].notna().any():
            return lab
    return "k16"


def pair_logs(data: ClaimData, pairs, col: str) -> list[float]:
    return [log_ratio(data.value(a, col), data.value(b, col)) for a, b in pairs]


# --- P1 drift ------------------------------------------------------------------------------------------


def p1(data: ClaimData) -> list[Part]:
    pairs = data.objective_pairs(full_ref)
    runs = flat(pairs)
    needs = None if pairs else NEEDS_PAIRS
    if pairs:
        needs = data.geo_needs(runs)
    return [over_seeds("log(drift per unit ‖ΔW‖/‖W0‖) RLVR/SFT", [] if needs else pair_logs(data, pairs, "geo:drift_per_rel"),
                       runs, 0.0, "below", needs),
            over_seeds("log(drift) RLVR/SFT", [] if needs else pair_logs(data, pairs, "geo:drift"), runs, 0.0, "below",
                       needs)]


def p1_pairs(data: ClaimData) -> list[Part]:
    a, b, needs = objective_sides(data)
    runs = a + b
    return [two_groups("log(drift per unit ‖ΔW‖/‖W0‖) RLVR − SFT", logs(data, a, "geo:drift_per_rel"),
                       logs(data, b, "geo:drift_per_rel"), runs, 0.0, "below", needs),
            two_groups("log(drift) RLVR − SFT", logs(data, a, "geo:drift"), logs(data, b, "geo:drift"), runs, 0.0,
                       "below", needs)]


register(Claim(
    "P1", "RLVR's spectral drift is smaller than SFT's, also at matched update size", SOURCE,
    "log ratio RLVR/SFT of spectral drift per unit relative update (drift_per_rel), and of raw drift",
    "full FT, beta 0, fp32: Sweep.pairs('objective') (same seed and settings), mean over seed pairs",
    "log ratio 0 (equal drift); claim: below",
    "paper: figures only, no numbers; summary, not in the paper: drift 0.08 (GRPO) vs 0.42 (SFT)", p1, order=10,
    pairs=p1_pairs))


# --- P2 rotation ----------------------------------------------------------------------------------------


def p2(data: ClaimData) -> list[Part]:
    pairs = data.objective_pairs(full_ref)
    runs = flat(pairs)
    lab = label(data, "angle_mean")
    if not pairs:
        return [over_seeds("log(angle/null) RLVR/SFT", [], runs, 0.0, "below", NEEDS_PAIRS)]
    if data.geo_needs(runs):
        return [over_seeds("log(angle/null) RLVR/SFT", [], runs, 0.0, "below", data.geo_needs(runs))]
    if not data.has(f"geo:angle_mean_{lab}", runs):
        return [over_seeds("log(angle/null) RLVR/SFT", [], runs, 0.0, "below",
                           f"reliable angles (Wedin bound < 1) in {NEEDS_GEO}; try k=gap16")]
    null = f"geo:angle_mean_null_{lab}"
    if data.has(null, runs):
        vals = [log_ratio(div(data.value(a, f"geo:angle_mean_{lab}"), data.value(a, null)),
                          div(data.value(b, f"geo:angle_mean_{lab}"), data.value(b, null))) for a, b in pairs]
        return [over_seeds(f"log((mean angle/random null) RLVR/SFT) at {lab}", vals, runs, 0.0, "below")]
    vals = pair_logs(data, pairs, f"geo:angle_per_rel_{lab}")
    return [over_seeds(f"log(mean angle per unit update) RLVR/SFT at {lab}", vals, runs, 0.0, "below",
                       note="no *_null columns: size-normalised angle instead of the random null")]


def p2_pairs(data: ClaimData) -> list[Part]:
    a, b, needs = objective_sides(data)
    runs = a + b
    lab = label(data, "angle_mean")
    name = f"log(mean angle / random null) at {lab}: RLVR − SFT"
    if not needs and not data.has(f"geo:angle_mean_{lab}", runs):
        needs = f"reliable angles (Wedin bound < 1) in {NEEDS_GEO}; try k=gap16"
    null = f"geo:angle_mean_null_{lab}"
    if needs or data.has(null, runs):
        def per_pair(r: str) -> float:
            return log_ratio(data.value(r, f"geo:angle_mean_{lab}"), data.value(r, null))
        return [two_groups(name, [per_pair(r) for r in a], [per_pair(r) for r in b], runs, 0.0, "below", needs)]
    return [two_groups(f"log(mean angle per unit update) at {lab}: RLVR − SFT", logs(data, a, f"geo:angle_per_rel_{lab}"),
                       logs(data, b, f"geo:angle_per_rel_{lab}"), runs, 0.0, "below",
                       note="no *_null columns: size-normalised angle instead of the random null")]


register(Claim(
    "P2", "RLVR rotates W0's top-k singular subspaces less than SFT", SOURCE,
    "log ratio RLVR/SFT of the mean principal angle (gap-aware k when analysed) over its same-size random null",
    "full FT, beta 0, fp32: Sweep.pairs('objective'); vacuous angles (Wedin ≥ 1) left out by the analyzer",
    "log ratio 0; claim: below",
    "paper: figures only; summary, not in the paper: 2.1° (GRPO) vs 12.3° (SFT)", p2, order=20, pairs=p2_pairs))


# --- P3 off-principal -----------------------------------------------------------------------------------


def p3(data: ClaimData, ref=full_ref, what: str = "full fine-tuning under {obj} (≥ 2 seeds)") -> list[Part]:
    lab = "k16"
    out = []
    for obj, side, name in (("rlvr", "below", "RLVR log(energy in top-k / random null)"),
                            ("sft", "above", "SFT log(energy in top-k / random null)")):
        g = data.group(lambda r, o=obj: ref(r) and r.get("objective") == o)
        runs = list(g["run"]) if len(g) else []
        nullcol = f"geo:energy_null_{lab}" if data.has(f"geo:energy_null_{lab}", runs) else f"geo:energy_base_{lab}"
        needs = None if runs else what.format(obj=obj)
        if runs:
            needs = data.geo_needs(runs, f"geo:energy_{lab}")
        vals = [] if needs else [log_ratio(data.value(r, f"geo:energy_{lab}"), data.value(r, nullcol)) for r in runs]
        out.append(over_seeds(name, vals, runs, 0.0, side, needs))
        if obj == "rlvr":
            mnull = f"geo:mask_overlap_null_{lab}" if data.has(f"geo:mask_overlap_null_{lab}", runs) else "geo:mask_base"
            ok = runs and data.has(f"geo:mask_overlap_{lab}", runs)
            vals = [data.value(r, f"geo:mask_overlap_{lab}") - data.value(r, mnull) for r in runs] if ok else []
            out.append(over_seeds("RLVR principal-mask overlap − null", vals, runs, 0.0, "below",
                                  None if ok else needs or NEEDS_GEO))
    return [out[0], out[1], out[2]]


register(Claim(
    "P3", "RLVR updates lie off W0's principal directions; SFT's do not", SOURCE,
    "per run log(energy_k16 / its random null k²/mn) and mask_overlap_k16 − its null (mask_overlap_null, else α)",
    "full FT, beta 0, fp32: the RLVR and the SFT condition (Sweep.groups), mean over seeds",
    "0 (random alignment); claim: RLVR below in both, SFT above",
    "paper: figures only (no numbers)", p3, order=30,
    pairs=lambda data: p3(data, any_pair, "pairs under {obj} in this group (≥ 2)")))


# --- P4 consistency -------------------------------------------------------------------------------------


def cross_table(data: ClaimData) -> pd.DataFrame | None:
    """The analyzer's whole-model ``cross_run.csv`` with run names (its labels mapped via geometry_runs.csv)."""
    try:
        cross = pd.read_csv(data.sweep.path / "cross_run.csv")
        names = pd.read_csv(data.sweep.path / "geometry_runs.csv")
    except (OSError, ValueError):
        return None
    to_run = dict(zip(names["label"].astype(str), names["run"].astype(str)))
    cross = cross[cross["scope"] == "all"].copy()
    cross["a"], cross["b"] = cross["run_a"].astype(str).map(to_run), cross["run_b"].astype(str).map(to_run)
    return cross


def cross_parts(data: ClaimData, pred, needs: str) -> list[Part]:
    pairs = data.seed_pairs(pred)
    cross = cross_table(data)
    runs = flat(pairs)
    rows = []
    if cross is not None:
        index = {frozenset((r.a, r.b)): r for r in cross.itertuples()}
        rows = [index[frozenset(p)] for p in pairs if frozenset(p) in index]
    why = None if pairs else needs
    if pairs and not rows:
        why = "cross_run.csv (python -m harness.analyze <sweep>)"
    note = "seed pairs share runs: the t-interval over pairs is optimistic"
    return [over_seeds("bf16 update-mask Jaccard − independent-mask expectation",
                       [r.jaccard - r.jaccard_base for r in rows], runs, 0.0, "above", why, note),
            over_seeds("ΔW cosine − random-direction |cosine|", [r.cosine - r.cosine_base for r in rows], runs, 0.0,
                       "above", why, note)]


def p4(data: ClaimData) -> list[Part]:
    return cross_parts(data, lambda r: full_ref(r) and _rlvr(r), "RLVR full FT with ≥ 2 seeds")


register(Claim(
    "P4", "RLVR's changed entries and ΔW directions agree across seeds beyond chance", SOURCE,
    "whole-model Jaccard of bf16 update masks − its independent-mask expectation; ΔW cosine − sqrt(2/(πd))",
    "RLVR full FT, beta 0, fp32: Sweep.pairs('seed') within the condition, cross_run.csv",
    "0 (chance); claim: above",
    "paper: bf16 update-mask Jaccard 0.55–0.60 vs random 0.37–0.47 (5 runs)", p4, order=40,
    pairs=lambda data: cross_parts(data, _rlvr, "≥ 2 RLVR pairs from one base")))


# --- P4.X reference update direction ---------------------------------------------------------------------

RL_OBJECTIVES = ("rlvr", "rloo")  # GRPO (and its loss variants) and REINFORCE leave-one-out


def reference_part(data: ClaimData, name: str, pred, key: str, needs: str) -> Part:
    """Per run: ΔW cosine to the mean ΔW of the runs in the other ``key`` groups, minus the random-direction
    |cosine| (:func:`harness.analysis.geometry.cross.reference_cosines`)."""
    from harness.analysis.geometry.cross import reference_cosines

    rows = data.select(pred)
    group = dict(zip(rows["run"], rows[key].astype(str))) if len(rows) else {}
    if len(set(group.values())) < 2:
        return over_seeds(name, [], list(group), 0.0, "above", needs)
    cross = cross_table(data)
    if cross is None or "norm_a" not in cross:
        return over_seeds(name, [], list(group), 0.0, "above",
                          "cross_run.csv with norms (python -m harness.analyze <sweep> force=true)")
    cross = cross.dropna(subset=["a", "b"]).assign(run_a=lambda d: d["a"], run_b=lambda d: d["b"])
    cos = reference_cosines(cross, group)
    chance = float(cross[cross["scope"] == "all"]["cosine_base"].max())
    runs = [r for r in cos if cos[r] == cos[r]]  # NaN: a zero update has no direction
    part = over_seeds(name, [cos[r] - chance for r in runs], runs, 0.0, "above",
                      None if runs else data.geo_needs(list(group)) or "cross_run.csv rows for these runs",
                      note=f"reference = mean ΔW of the other {key} groups; chance |cosine| {chance:.1e}; "
                           f"groups: {', '.join(sorted(set(group.values())))}; runs of a group share their "
                           "reference: the t-interval over runs is optimistic")
    part.unit = "runs"
    return part


def p4x(data: ClaimData) -> list[Part]:
    full_rl = lambda r: r.get("adapter") == "full" and r.get("objective") in RL_OBJECTIVES  # noqa: E731
    by_task = reference_part(
        data, "ΔW cosine to the other datasets' mean RLVR update − chance",
        lambda r: full_rl(r) and _rlvr(r) and ungated(r),
        "task_name", "RLVR full FT on ≥ 2 tasks (beta 0, fp32)")
    by_algo = reference_part(
        data, "ΔW cosine to the other RL algorithms' mean update − chance",
        lambda r: full_rl(r) and plain(r), "objective", "full FT under ≥ 2 RL objectives (rlvr, rloo) on the main task")
    return [by_task, by_algo]


register(Claim(
    "P4.X", "RLVR's ΔW direction agrees across datasets and RL algorithms (a reference update direction)", SOURCE,
    "per run: cosine of its ΔW to the mean ΔW of the runs on the other datasets (RL algorithms) − the "
    "random-direction |cosine| sqrt(2/(πd))",
    "full FT, beta 0, fp32 RL runs grouped by task (GRPO) and by objective (rlvr vs rloo, main task); cross_run.csv",
    "0 (chance); claim: above",
    "summary, not in the paper: cross-dataset/algorithm cosines 0.89–0.95 (the paper shows the reference "
    "direction in figures)", p4x, order=41))


# --- P5 gates -------------------------------------------------------------------------------------------


def p5_kl(data: ClaimData) -> list[Part]:
    rows = data.select(lambda r: r.get("adapter") == "full" and _rlvr(r) and main_task(r)
                       and str(r.get("dtype")) in ("float32", "nan"))
    pairs: dict[tuple[str, str], None] = {}
    for s in data.sweep.settings:
        for a, b, _ in data.sweep.pairs(s, rows):
            ba, bb = data.value(a, "beta"), data.value(b, "beta")
            if (ba == 0) != (bb == 0):
                pairs[(a, b) if ba > 0 else (b, a)] = None
    runs = flat(list(pairs))
    needs = None if pairs else "RLVR full FT with objective.beta 0 and > 0, same seeds (≥ 2)"
    if pairs:
        needs = data.geo_needs(runs)
    vals = [] if needs else [log_ratio(data.value(a, "geo:drift"), data.value(b, "geo:drift")) for a, b in pairs]
    return [over_seeds("log(drift) beta>0 / beta=0", vals, runs, 0.0, "below", needs)]


register(Claim(
    "P5.I", "Gate I: a KL penalty shrinks RLVR's spectral drift", SOURCE,
    "log ratio of spectral drift, RLVR with beta > 0 vs beta = 0",
    "RLVR full FT fp32: Sweep.pairs over the setting that varies beta (same seed, rest equal)",
    "log ratio 0; claim: below",
    "paper: the KL anchor is Gate I (no numbers quoted)", p5_kl, order=50))


def p5_precision(data: ClaimData) -> list[Part]:
    g = data.group(lambda r: full_ref(r) and _rlvr(r))
    runs = list(g["run"]) if len(g) else []
    needs = None if runs else "RLVR full FT trained in fp32 (≥ 2 seeds)"
    if runs:
        needs = data.geo_needs(runs, f"geo:{APPARENT}")
    vals = []
    for r in runs if not needs else []:
        bf, ab = data.value(r, f"geo:{APPARENT}"), data.value(r, "geo:sparsity_abs")
        vals.append(div(bf - ab, bf))
    bf16 = data.group(lambda r: r.get("adapter") == "full" and _rlvr(r) and r.get("dtype") == "bfloat16"
                      and main_task(r))
    note = ""
    if len(bf16) and "geo:sparsity_abs" in bf16:
        note = f"bf16-trained RLVR: sparsity |Δ|≤1e-5 = {bf16['geo:sparsity_abs'].mean():.3f} (n={len(bf16)})"
    if runs and not needs and data.has("geo:sparsity_bf16", runs):
        cast = [div(data.value(r, "geo:sparsity_bf16") - data.value(r, "geo:sparsity_abs"),
                    data.value(r, "geo:sparsity_bf16")) for r in runs]
        note = "; ".join(x for x in (note, "by the bf16-cast criterion instead: "
                                     f"{sum(cast) / len(cast):.3f}") if x)
    return [over_seeds("share of relative-1e-3-rule sparsity not real at |Δ|≤1e-5 (fp32 training)", vals, runs,
                       MOST, "above", needs, note)]


def p5_precision_pairs(data: ClaimData) -> list[Part]:
    """Released pairs: the apparent sparsity is the papers' own, identical after casting to bf16; whether it
    is real shows only in checkpoints stored in float32 (stored in bf16, |Δ| ≤ 1e-5 and bf16 identity count
    the same entries)."""
    rl = data.select(_rlvr)
    fp32 = rl[(rl["base_dtype"] == "float32") & (rl["tuned_dtype"] == "float32")] if len(rl) else rl
    runs = list(fp32["run"]) if len(fp32) else []
    stored = ", ".join(f"{r.run}: {r.base_dtype}→{r.tuned_dtype}" for r in rl.itertuples()) if len(rl) else ""
    needs = None if runs else ("RLVR pairs stored in float32 (≥ 2): in bf16-stored checkpoints |Δ|≤1e-5 and "
                               "bf16 identity count the same entries, so precision cannot be told apart")
    if runs:
        needs = data.geo_needs(runs, "geo:sparsity_bf16")
    vals = [] if needs else [div(data.value(r, "geo:sparsity_bf16") - data.value(r, "geo:sparsity_abs"),
                                 data.value(r, "geo:sparsity_bf16")) for r in runs]
    return [over_seeds("share of bf16-cast sparsity not real at |Δ|≤1e-5 (fp32-stored pairs)", vals, runs, MOST,
                       "above", needs, f"storage dtypes: {stored}" if stored else "")]


register(Claim(
    "P5.III", "Gate III: bf16 precision explains most of RLVR's apparent sparsity", SOURCE,
    "(sparsity_rel1e3 − sparsity_abs) / sparsity_rel1e3 of fp32-trained RLVR full FT (pairs: the bf16-cast "
    "criterion, fp32-stored pairs only)",
    "RLVR full FT, beta 0, fp32 condition (Sweep.groups), mean over seeds; bf16-trained runs in the note",
    f"{MOST} (more than half); claim: above",
    "paper: RLVR sparsity 36–92 % vs SFT 0.6–18.8 % (bf16 criterion)", p5_precision, order=51,
    pairs=p5_precision_pairs))


# --- P6 PEFT under RLVR ---------------------------------------------------------------------------------


def _rel(data: ClaimData, adapter_pred, obj: str) -> dict:
    """seed -> acc_id(adapter)/acc_id(full) under ``obj``, seed-matched conditions."""
    pairs = data.seed_matched(lambda r: adapter_pred(r) and r.get("objective") == obj and plain(r),
                              lambda r: full_ref(r) and r.get("objective") == obj)
    out = {}
    for a, f in pairs:
        fa = data.value(f, "acc_id")
        out[data.value(a, "seed")] = (div(data.value(a, "acc_id"), fa), a, f)
    return out


def p6(data: ClaimData) -> list[Part]:
    lora = lambda r: r.get("adapter") == "lora"  # noqa: E731
    rl, sf = _rel(data, lora, "rlvr"), _rel(data, lora, "sft")
    seeds = sorted(set(rl) & set(sf))
    runs = [x for s in seeds for x in (*rl[s][1:], *sf[s][1:])]
    needs = None if seeds else "lora and full FT under both objectives, same seeds (≥ 2)"
    if seeds and not data.has("acc_id", runs):
        needs = "eval.json (held-out accuracy)"
    gap = over_seeds("LoRA acc/full: SFT − RLVR", [] if needs else [sf[s][0] - rl[s][0] for s in seeds], runs, 0.0,
                     "above", needs)
    prin = data.seed_matched(lambda r: r.get("adapter") == "sparse" and r.get("criterion") == "principal" and _rlvr(r),
                             lambda r: r.get("adapter") == "sparse" and r.get("criterion") == "non_principal"
                             and _rlvr(r))
    pruns = flat(prin)
    needs = None if prin else "sparse principal and non_principal masks under RLVR, same seeds (≥ 2)"
    if prin and not data.has("acc_id", pruns):
        needs = "eval.json (held-out accuracy)"
    diff = over_seeds("RLVR acc: principal − non-principal mask", [] if needs else
                      [data.value(a, "acc_id") - data.value(b, "acc_id") for a, b in prin], pruns, 0.0, "below", needs)
    return [gap, diff]


register(Claim(
    "P6", "SFT-era PEFT loses more under RLVR than SFT; a principal sparse mask does worse than a non-principal one",
    SOURCE,
    "LoRA's held-out accuracy relative to full FT, SFT minus RLVR; RLVR accuracy of principal − non-principal mask",
    "lora vs full and sparse principal vs non_principal conditions (Sweep.groups), matched by seed",
    "0; claim: gap above, mask difference below",
    "summary, not in the paper: LoRA r=16 −1.2 % (SFT) vs −5.8 % (RLVR); sparse top-10 % −0.5 % vs −4.1 %",
    p6, order=60))


# --- P7: RLVR raises reasoning accuracy more than SFT --------------------------------------------------------


def p7(data: ClaimData) -> list[Part]:
    pairs = data.objective_pairs(full_ref)
    runs = flat(pairs)
    needs = None if pairs else NEEDS_PAIRS
    if pairs and not data.has("gain_id", runs):
        needs = "eval.json (held-out accuracy of base and run)"
    vals = [] if needs else [data.value(a, "gain_id") - data.value(b, "gain_id") for a, b in pairs]
    return [over_seeds("held-out gain RLVR − SFT", vals, runs, 0.0, "above", needs)]


register(Claim(
    "P7", "RLVR raises reasoning accuracy more than SFT", SOURCE,
    "held-out accuracy gain (run − base), RLVR − SFT, full FT, seed pairs",
    "full FT, beta 0, fp32: Sweep.pairs('objective')",
    "0; claim: above",
    "summary, not in the paper: reasoning accuracy +8.7 % (GRPO) vs +3.2 % (SFT) (its finding 4)", p7, order=65))
