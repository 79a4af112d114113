"""Claims on which part of an update carries the gain (ΔW surgery, ``surgery.json``) and on the update's path
(``trajectory_summary.json``, ``trajectory_eval.json``): A1 *AlphaRL*, M1 *The Path Not Taken*'s mask ablation,
H1 *RL Heals OOD Forgetting*, LIN1 *RLVR linearity*, X1 *RELEX*, PU1 *PULSE*.

The per-run figures are :mod:`harness.analysis.surgery_values`' (one definition each). A fraction of a gain is
defined only where the run's change is told apart from 0 (:func:`harness.measure.surgery.kept_fraction`); where
it is not, the claim is inconclusive and says so. None of them can be judged on released pairs (``pairs=None``):
surgery and trajectories need the run's evaluation and its training steps.
"""

from __future__ import annotations

import math

from harness.analysis.surgery_values import edit_keys
from harness.claims.base import Claim, Part, Result, equivalent, register
from harness.claims.data import ClaimData, full_ref, main_task, over_seeds

NEEDS_SURGERY = "surgery.json with a {edit} edit (surgery.enabled=true, surgery.edits)"
NEEDS_TRAJ = "trajectory_summary.json (trajectory.every>0, trajectory.analyze=true)"
NEEDS_TRAJ_EVAL = ("trajectory_eval.json (trajectory.every>0, trajectory.sketch=false, "
                   "trajectory.eval_extrapolated=true)")
RANK1 = "rank k=1"
RESTORE = "restore_top f=0.2"
ALPHARL = 0.99  # "over 99 % of the gain": the fraction kept by the rank-1 part, held-out
MOST = 0.7  # H1: "recovers 70-80% of OOD performance" (arXiv 2508.16546 abstract): its lower figure
LINEAR = 0.7  # "a highly linear manner (R² > 0.7)" (arXiv 2601.04537 v3 abstract): the source's own threshold
# X1: "extrapolates to the trained model" as an equivalence of accuracy; the margin of L1 (lora_regret.MARGIN):
# 0.05 absolute held-out accuracy, below the 95 % half-width of one 200-prompt accuracy near 0.5 (≈ 0.069)
MARGIN = 0.05
PULSE = 0.99  # "~99 % of bf16 weights do not change" per optimizer step


def rlvr_full(row: dict) -> bool:
    """RLVR, full fine-tuning at the reference settings (beta 0, fp32, the main task)."""
    return full_ref(row) and row.get("objective") == "rlvr"


def sft_full(row: dict) -> bool:
    return full_ref(row) and row.get("objective") == "sft"


def rlvr_full_any_dtype(row: dict) -> bool:
    """PULSE casts to bf16 whatever the training dtype: RLVR full FT on the main task."""
    return row.get("adapter") == "full" and row.get("objective") == "rlvr" and main_task(row)


def measured(data: ClaimData, pred, col: str) -> tuple[list[str], bool]:
    """The runs of the largest condition satisfying ``pred`` that has ``col`` (the artifact), and whether
    there was one; without one, the largest condition of ``pred`` (to name what it lacks)."""
    has = data.group(lambda r: pred(r) and col in r and isinstance(r[col], str | int | float)
                     and not (isinstance(r[col], float) and math.isnan(r[col])))
    if len(has):
        return list(has["run"]), True
    g = data.group(pred)
    return (list(g["run"]) if len(g) else []), False


def undefined(data: ClaimData, runs: list[str], col: str, why_col: str) -> str | None:
    """What is missing when a per-run fraction is undefined in some runs (the run's change not told apart
    from 0): the count and the first reason."""
    bad = [r for r in runs if not math.isfinite(data.value(r, col))]
    if not bad:
        return None
    why = data.row(bad[0]).get(why_col)
    return f"a change told apart from 0 in every run (undefined in {len(bad)} of {len(runs)}: {why})"


def edit_part(data: ClaimData, pred, key: str, stat: str, name: str, null: float, side: str, what: str,
              why: str) -> Part:
    """A part over seeds of one per-run surgery figure ``surg:<key>:<stat>``, the random null's beside it."""
    col = f"surg:{key}:{stat}"
    runs, found = measured(data, pred, f"surg:{key}:edit")
    needs = None if runs else what
    if runs and not found:
        needs = NEEDS_SURGERY.format(edit=f"`{key}`")
    needs = needs or undefined(data, runs, col, f"surg:{key}:{why}")
    part = over_seeds(name, [] if needs else [data.value(r, col) for r in runs], runs, null, side, needs)
    nulls = [data.value(r, f"surg:{key}:null_{stat}") for r in runs]
    nulls = [v for v in nulls if math.isfinite(v)]
    if nulls and not needs:
        part.note = f"random norm-matched null: {sum(nulls) / len(nulls):.3g}; " + (
            f"‖T(ΔW)‖/‖ΔW‖ = {sum(data.value(r, f'surg:{key}:norm_ratio') for r in runs) / len(runs):.3g}")
    return part


# --- A1 AlphaRL --------------------------------------------------------------------------------------------


def a1(data: ClaimData) -> list[Part]:
    return [edit_part(data, rlvr_full, RANK1, "kept_id", "held-out gain kept by rank-1 ΔW (RLVR)", ALPHARL,
                      "above", "RLVR full FT with ≥ 2 seeds", "why_id")]


register(Claim(
    "A1", "The rank-1 part of an RL update recovers over 99 % of its accuracy gain",
    "AlphaRL (arXiv 2510.00553)",
    "held-out fraction of the run's gain kept by W0 + rank-1 truncation of ΔW (per matrix), random null beside",
    "RLVR full FT (Sweep.groups), runs with surgery.json", f"fraction kept {ALPHARL}; claim: above",
    "abstract: the top singular subspace of ΔW \"recovering over 99% of performance gains\", 8 LLMs x 7 RL "
    "algorithms; the paper rescales the rank-1 update to ΔW's L2 norm, this edit truncates (no rescaling)",
    a1, order=130))


# --- M1 The Path Not Taken: mask ablation ---------------------------------------------------------------------


def mask_keys(data: ClaimData) -> tuple[str, str] | None:
    """(principal_mask key, off_mask key) with the same parameters, the first such pair the sweep has."""
    keys = edit_keys(data.table.columns)
    for k in keys:
        if k.startswith("principal_mask") and ("off_mask" + k[len("principal_mask"):]) in keys:
            return k, "off_mask" + k[len("principal_mask"):]
    return None


def m1(data: ClaimData) -> list[Part]:
    name = "held-out gain kept: principal-mask-only − off-mask-only (RLVR)"
    keys = mask_keys(data)
    g = data.group(rlvr_full)
    runs = list(g["run"]) if len(g) else []
    if not runs or keys is None:
        what = "RLVR full FT with ≥ 2 seeds" if not runs else NEEDS_SURGERY.format(
            edit="`principal_mask` and an `off_mask` (same k, alpha)")
        return [over_seeds(name, [], runs, 0.0, "below", what)]
    on, off = keys
    runs, _ = measured(data, rlvr_full, f"surg:{on}:edit")
    runs = [r for r in runs if math.isfinite(data.value(r, f"surg:{off}:norm_ratio"))]
    needs = None if runs else NEEDS_SURGERY.format(edit=f"`{on}` and `{off}`")
    needs = needs or undefined(data, runs, f"surg:{on}:kept_id", f"surg:{on}:why_id") or undefined(
        data, runs, f"surg:{off}:kept_id", f"surg:{off}:why_id")
    vals = [] if needs else [data.value(r, f"surg:{on}:kept_id") - data.value(r, f"surg:{off}:kept_id") for r in runs]
    part = over_seeds(f"{name} [{on.split(' ', 1)[-1]}]", vals, runs, 0.0, "below", needs)
    if not needs:
        part.note = " ".join(f"{k.split()[0]} kept {sum(data.value(r, f'surg:{k}:kept_id') for r in runs) / len(runs):.3g}"
                             for k in keys)
    return [part]


register(Claim(
    "M1", "Keeping only the principal-mask entries of an RLVR update loses accuracy; keeping the off-principal "
    "entries does not", "The Path Not Taken (arXiv 2511.08567)",
    "per seed: held-out fraction of the gain kept by ΔW on W0's principal mask minus that kept by ΔW off it",
    "RLVR full FT (Sweep.groups), runs with surgery.json", "difference 0; claim: below",
    "paper: the mask ablation in figures (no numbers checked here)",
    m1, order=131))


# --- H1 restoring the top singular directions heals OOD forgetting ----------------------------------------------


def h1(data: ClaimData) -> list[Part]:
    return [edit_part(data, sft_full, RESTORE, "recovered_ood", "share of SFT's OOD loss recovered by restoring "
                      "W0's top 20 % directions", MOST, "above", "SFT full FT with ≥ 2 seeds", "why_recovered")]


register(Claim(
    "H1", "Restoring the top ~20 % singular directions of a fine-tuned model recovers most of its OOD loss",
    "RL Is Neither a Panacea Nor a Mirage / RL Heals OOD Forgetting (arXiv 2508.16546, 2509.12235)",
    "over the OOD tasks the run lost on (told apart from 0): 1 − fraction of the change kept by restore_top f=0.2",
    "SFT full FT (Sweep.groups), runs with surgery.json", f"share recovered {MOST}; claim: above",
    "2508.16546 abstract: \"restoring singular vector directions for the top 20% of values or first 25% of layers "
    "recovers 70-80% of OOD performance\" (Llama-3.2-11B, Qwen-2.5-7B, 24-point card game)",
    h1, order=132))


# --- trajectory claims -------------------------------------------------------------------------------------------


def traj_part(data: ClaimData, pred, col: str, name: str, null: float, side: str, what: str = NEEDS_TRAJ,
              value=lambda v: v) -> Part:
    runs, found = measured(data, pred, col)
    needs = None if runs else "RLVR full FT with ≥ 2 seeds"
    if runs and not found:
        needs = what
    return over_seeds(name, [] if needs else [value(data.value(r, col)) for r in runs], runs, null, side, needs)


def lin1(data: ClaimData) -> list[Part]:
    part = traj_part(data, rlvr_full, "traj:r2_linear", "linear-in-step R² of ΔW_t (RLVR, whole model)", LINEAR,
                     "above")
    r1 = [data.value(r, "traj:r2_rank1") for r in part.runs if not part.needs]
    if r1:
        part.note = f"rank-1-in-time R² beside it: {sum(r1) / len(r1):.3g}"
    return [part]


register(Claim(
    "LIN1", "RLVR's weights move nearly linearly in the training step", "RLVR linearity (arXiv 2601.04537)",
    "whole-model R² of ΔW_t ≈ (t/T)·ΔW_T over the run's snapshots (rank-1-in-time R² beside)",
    "RLVR full FT (Sweep.groups), runs with trajectory_summary.json", f"R² {LINEAR}; claim: above",
    "v3 abstract: weights and log-probabilities evolve \"in a highly linear manner (R² > 0.7)\"", lin1, order=133))


def x1(data: ClaimData) -> list[Part]:
    part = traj_part(data, rlvr_full, "traj:extrap_delta", "held-out acc: extrapolated − trained (RLVR)", 0.0,
                     "within", NEEDS_TRAJ_EVAL)
    err = [data.value(r, "traj:extrap_rel_err") for r in part.runs if not part.needs]
    err = [v for v in err if math.isfinite(v)]
    if err:
        part.note = f"‖ΔŴ_T − ΔW_T‖/‖ΔW_T‖ = {sum(err) / len(err):.3g}"
    return [part]


def x1_rule(parts: list[Part]) -> Result:
    """Equivalence: the accuracy difference inside ±MARGIN (:func:`harness.claims.base.equivalent`)."""
    return Result(*equivalent(parts[0], MARGIN), parts)


register(Claim(
    "X1", "A rank-1 fit of the early update extrapolates to the trained model", "RELEX (arXiv 2605.21468)",
    "held-out accuracy of W0 + ΔŴ_T (ΔW_t ≈ t·β fitted on steps ≤ fit_fraction·T) minus the trained model's",
    "RLVR full FT (Sweep.groups), runs with trajectory_eval.json", f"equivalence margin ±{MARGIN} accuracy",
    "abstract: \"observe only the first 50 steps and extrapolate to 1000 steps\", matching or exceeding RLVR with as "
    "few as 15 % of its steps (Qwen2.5-Math-1.5B, Qwen3-4B/8B-Base)",
    x1, rule=x1_rule, order=134))


def pu1(data: ClaimData) -> list[Part]:
    return [traj_part(data, rlvr_full_any_dtype, "traj:pulse_bf16_changed",
                      "share of bf16-stored weights unchanged per step (RLVR, mean over steps)", PULSE, "above",
                      value=lambda v: 1.0 - v)]


register(Claim(
    "PU1", "Per optimizer step, about 99 % of bf16-stored weights do not change", "PULSE (arXiv 2602.03839)",
    "1 − mean over steps of the whole-model share of values whose bf16 cast changed in the step",
    "RLVR full FT on the main task, any training dtype (Sweep.groups), runs with trajectory_summary.json",
    f"share unchanged {PULSE}; claim: above", "abstract: \"approximately 99% of per-step weight updates are invisible after the BF16 cast\"",
    pu1, order=135))
