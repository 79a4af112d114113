"""The surgery and trajectory claims (A1, M1, H1, LIN1, X1, PU1) on synthetic sweeps of hand-made
``surgery.json`` / ``trajectory_summary.json`` / ``trajectory_eval.json``, read by the real readers: each claim
supported, contradicted and inconclusive, and the "needs" line when the artifact is absent."""

from __future__ import annotations

import math

import pytest

from harness.analysis.surgery_values import edit_key, surgery_values, trajectory_values
from harness.claims import CONTRADICTED, INCONCLUSIVE, SUPPORTED, ordered
from tests.claims.test_claims import make_run, verdict

UNTOLD = "the run's change +0.010 has a 95 % interval [-0.02, 0.04] that includes 0: no change to keep a fraction of"


def task(split: str, change: float, told: bool = True) -> dict:
    ci = [change - 0.05, change + 0.05] if told else [change - 0.03, change + 0.03]
    return {"split": split, "change": change, "change_ci": ci, "change_distinguishable": told}


def rows(kept_id: float | None, kept_ood: float | None) -> dict:
    return {"id": {"kept": kept_id, "kept_reason": None if kept_id is not None else UNTOLD},
            "ood_x": {"kept": kept_ood, "kept_reason": None if kept_ood is not None else UNTOLD}}


def surgery(edits: dict[str, tuple], gain: float = 0.2, ood: float = -0.1, told: bool = True) -> dict:
    """A surgery.json: ``edits`` name -> (edit, params, kept_id, kept_ood[, null kept_id, null kept_ood, norm])."""
    out = {}
    for name, (edit, params, k_id, k_ood, *rest) in edits.items():
        n_id, n_ood, norm = (rest + [0.0, 0.0, 0.5][len(rest):])[:3]
        if not told:
            k_id = k_ood = None
        out[name] = {"edit": edit, "params": params, "norm_ratio": norm, "tasks": rows(k_id, k_ood),
                     "random": {"norm_ratio": norm, "tasks": rows(n_id if told else None, n_ood if told else None)}}
    return {"tasks": {"id": task("id", gain if told else 0.01, told), "ood_x": task("ood", ood, told)},
            "edits": out}


def run(tmp_path, objective: str, seed: int, files: dict, **kw):
    return make_run(tmp_path, "full", objective, seed, acc=0.6, ood=-0.05, files=files, **kw)


def test_registered_with_their_sources_and_no_pair_estimate():
    claims = {c.id: c for c in ordered()}
    for cid in ("A1", "M1", "H1", "LIN1", "X1", "PU1"):
        c = claims[cid]
        assert c.source_figure and c.pairs is None, cid


def test_edit_key_and_per_run_values_from_a_hand_made_file():
    assert edit_key("rank", {"k": 1}) == "rank k=1"
    assert edit_key("principal_mask", {"k": 16, "alpha": 0.2}) == "principal_mask alpha=0.2 k=16"
    v = surgery_values(surgery({"r1": ("rank", {"k": 1}, 0.9, 0.5, 0.1, 0.3, 0.25)}))
    assert v["surg:rank k=1:kept_id"] == 0.9 and v["surg:rank k=1:null_kept_id"] == 0.1
    assert v["surg:rank k=1:norm_ratio"] == 0.25 and v["surg:rank k=1:entry"] == "r1"
    assert v["surg:rank k=1:recovered_ood"] == pytest.approx(0.5)  # the OOD loss, half given back
    v = surgery_values(surgery({"r1": ("rank", {"k": 1}, 0.9, 0.5)}, told=False))
    assert math.isnan(v["surg:rank k=1:kept_id"]) and "includes 0" in v["surg:rank k=1:why_id"]
    t = trajectory_values({"whole": {"r2_rank1": 0.97, "r2_linear": 0.9, "extrap_rel_err": 0.1},
                           "pulse": {"bfloat16": {"mean_changed": 0.01}}},
                          {"tasks": {"id": {"delta": -0.02}, "ood_x": {"delta": 0.4}}},
                          {"tasks": {"id": {"split": "id"}, "ood_x": {"split": "ood"}}})
    assert t == {"traj:r2_rank1": 0.97, "traj:r2_linear": 0.9, "traj:extrap_rel_err": 0.1,
                 "traj:pulse_bf16_changed": 0.01, "traj:extrap_delta": -0.02}


# --- A1 AlphaRL: rank-1 keeps > 99 % of the gain -------------------------------------------------------------


@pytest.mark.parametrize("case,expected", [("holds", SUPPORTED), ("fails", CONTRADICTED),
                                           ("no gain", INCONCLUSIVE)])
def test_a1_rank1_keeps_the_gain(tmp_path, case, expected):
    for s in range(3):
        kept = 0.995 + 0.001 * s if case == "holds" else 0.6 + 0.01 * s
        run(tmp_path, "rlvr", s, {"surgery.json": surgery({"rank1": ("rank", {"k": 1}, kept, 0.5)},
                                                           told=case != "no gain")})
    v, why = verdict(tmp_path, "A1")
    assert v == expected, why
    if case == "no gain":
        assert "told apart from 0" in why and "3 of 3" in why and "includes 0" in why


def test_a1_names_the_config_when_surgery_is_absent(tmp_path):
    for s in range(3):
        run(tmp_path, "rlvr", s, {})
    v, why = verdict(tmp_path, "A1")
    assert v == INCONCLUSIVE and "needs: surgery.json" in why and "surgery.enabled=true" in why


# --- M1 Path Not Taken: principal-mask-only keeps less than off-mask-only -------------------------------------


@pytest.mark.parametrize("case,expected", [("holds", SUPPORTED), ("fails", CONTRADICTED),
                                           ("one seed", INCONCLUSIVE)])
def test_m1_mask_ablation(tmp_path, case, expected):
    on, off = (0.2, 0.9) if case != "fails" else (0.95, 0.3)
    for s in range(1 if case == "one seed" else 3):
        p = {"k": 16, "alpha": 0.2}
        run(tmp_path, "rlvr", s, {"surgery.json": surgery({"principal_mask": ("principal_mask", p, on + 0.01 * s, 0),
                                                           "off_mask": ("off_mask", p, off - 0.02 * s, 0)})})
    v, why = verdict(tmp_path, "M1")
    assert v == expected, why


def test_m1_needs_both_masks(tmp_path):
    for s in range(3):
        run(tmp_path, "rlvr", s, {"surgery.json": surgery({"rank1": ("rank", {"k": 1}, 0.5, 0.5)})})
    v, why = verdict(tmp_path, "M1")
    assert v == INCONCLUSIVE and "needs: surgery.json" in why and "off_mask" in why


# --- H1 restoring the top 20 % recovers most of SFT's OOD loss ------------------------------------------------


@pytest.mark.parametrize("case,expected", [("holds", SUPPORTED), ("fails", CONTRADICTED),
                                           ("no loss", INCONCLUSIVE)])
def test_h1_restore_heals_ood(tmp_path, case, expected):
    for s in range(3):
        kept_ood = 0.2 + 0.02 * s if case != "fails" else 0.9 + 0.02 * s  # recovered = 1 − kept
        run(tmp_path, "sft", s, {"surgery.json": surgery({"restore_top20": ("restore_top", {"f": 0.2}, 0.5, kept_ood)},
                                                          ood=0.1 if case == "no loss" else -0.1)})
    v, why = verdict(tmp_path, "H1")
    assert v == expected, why
    if case == "no loss":
        assert "no loss to recover" in why


# --- trajectory claims ---------------------------------------------------------------------------------------


def summary(r2_linear: float, changed: float = 0.01) -> dict:
    return {"whole": {"r2_rank1": 0.99, "r2_linear": r2_linear, "extrap_rel_err": 0.05},
            "pulse": {"bfloat16": {"mean_changed": changed}, "float32": {"mean_changed": 0.9}}}


@pytest.mark.parametrize("case,expected", [("holds", SUPPORTED), ("fails", CONTRADICTED),
                                           ("absent", INCONCLUSIVE)])
def test_lin1_linear_in_step(tmp_path, case, expected):
    for s in range(3):
        files = {} if case == "absent" else {
            "trajectory_summary.json": summary(0.95 + 0.01 * s if case == "holds" else 0.5 + 0.02 * s)}
        run(tmp_path, "rlvr", s, files)
    v, why = verdict(tmp_path, "LIN1")
    assert v == expected, why
    if case == "absent":
        assert "needs: trajectory_summary.json" in why and "trajectory.every" in why


@pytest.mark.parametrize("case,expected", [("holds", SUPPORTED), ("fails", CONTRADICTED),
                                           ("one seed", INCONCLUSIVE), ("absent", INCONCLUSIVE)])
def test_x1_extrapolated_model_matches_the_trained_one(tmp_path, case, expected):
    for s in range(1 if case == "one seed" else 3):
        delta = 0.01 * (s - 1) if case != "fails" else -0.3 + 0.01 * s
        files = {"trajectory_summary.json": summary(0.9)}
        if case != "absent":
            files["trajectory_eval.json"] = {"tasks": {"id": {"delta": delta}}}
        run(tmp_path, "rlvr", s, files)
    v, why = verdict(tmp_path, "X1")
    assert v == expected, why
    if case == "absent":
        assert "needs: trajectory_eval.json" in why and "eval_extrapolated=true" in why


@pytest.mark.parametrize("case,expected", [("holds", SUPPORTED), ("fails", CONTRADICTED),
                                           ("spans", INCONCLUSIVE)])
def test_pu1_bf16_weights_mostly_unchanged_per_step(tmp_path, case, expected):
    changed = {"holds": (0.002, 0.003, 0.004), "fails": (0.3, 0.35, 0.4), "spans": (0.0, 0.02, 0.005)}[case]
    for s, c in enumerate(changed):
        run(tmp_path, "rlvr", s, {"trajectory_summary.json": summary(0.9, c)})
    v, why = verdict(tmp_path, "PU1")
    assert v == expected, why
