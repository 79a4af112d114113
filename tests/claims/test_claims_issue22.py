"""The claims of issue 22 on synthetic sweeps (hand-made artifacts read by the real readers): P7, SR1, RD1, OD1,
PR1, PE1 and PE3 each supported, contradicted and inconclusive where the numbers say so; the split-half
estimator of PR1 on counts with known answers; ``python -m harness.claims --list``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.claims import CONTRADICTED, INCONCLUSIVE, SUPPORTED
from harness.claims.prorl import split_half
from tests.claims.test_claims import make_run, verdict
from tests.conftest import ROOT, write_run

SEEDS = (0, 1, 2)


def run_with(sweep: Path, adapter: str, objective: str, seed: int, arm: str, acc: float, ood: float = 0.0,
             reward: str | None = None, geo: dict | None = None, files: dict | None = None, r: int = 8,
             steps: int | None = None, record: dict | None = None):
    """A done run of a claims arm (``+claims_arm=<arm>``), paid ``reward`` when given, of ``steps`` steps when
    given (an ``objective.steps`` override, as a sweep over it writes)."""
    out = {**(files or {})}
    if geo is not None:
        out["geometry_summary.json"] = {"whole_model": {"rel_update": 1e-3, **geo}}
    out["eval.json"] = {"tasks": {"id": {"split": "id", "accuracy": acc, "base_accuracy": 0.4, "delta": acc - 0.4},
                                  "ood_x": {"split": "ood", "accuracy": 0.5 + ood, "base_accuracy": 0.5,
                                            "delta": ood}}}
    obj = {"steps": steps or 2, "lr": None, **({"reward": reward} if reward else {})}
    extra = [f"objective.steps={steps}"] if steps else []
    return write_run(sweep, [f"adapter={adapter}", f"objective={objective}", f"seed={seed}", f"+claims_arm={arm}",
                             *extra],
                     cfg={"adapter": {"r": r, "lr": {"sft": 1e-5, "rlvr": 5e-6}}, "objective": obj,
                          "model": {"dtype": "float32"}}, files=out, record=record)


def test_list_prints_every_claim_with_its_source():
    r = subprocess.run([sys.executable, "-m", "harness.claims", "--list"], capture_output=True, text=True, cwd=ROOT,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[-1].startswith("[harness] ") and int(lines[-1].split()[1]) == len(lines) - 1 >= 25
    ids = [line.split()[0] for line in lines[:-1]]
    assert {"P7", "SR1", "RD1", "OD1", "PR1", "PE1", "PE2", "PE3"} <= set(ids)
    assert all(line.rstrip().endswith("]") and "[" in line for line in lines[:-1])


# --- P7 ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("rl", "expected"), [(0.7, SUPPORTED), (0.45, CONTRADICTED), (None, INCONCLUSIVE)])
def test_p7_rlvr_gains_more_than_sft(tmp_path, rl, expected):
    seeds = (0,) if rl is None else SEEDS
    for s in seeds:
        make_run(tmp_path, "full", "sft", s, acc=0.5 + 0.01 * s)
        make_run(tmp_path, "full", "rlvr", s, acc=(rl or 0.6) + 0.01 * s * (s % 2))
    v, why = verdict(tmp_path, "P7")
    assert v == expected, why


# --- SR1 ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("gains", "expected"), [((0.1, 0.05), SUPPORTED), ((-0.1, 0.05), CONTRADICTED),
                                                 ((0.1, None), INCONCLUSIVE)])
def test_sr1_spurious_rewards(tmp_path, gains, expected):
    for s in SEEDS:
        run_with(tmp_path, "full", "rlvr", s, "full", 0.6)
        for reward, g in zip(("random", "format"), gains):
            if g is not None:
                run_with(tmp_path, "full", "rlvr", s, f"full_{reward}_reward", 0.4 + g + 0.01 * s, reward=reward)
    v, why = verdict(tmp_path, "SR1")
    assert v == expected, why
    if gains[1] is None:
        assert "objective.reward=format" in why


@pytest.mark.parametrize("analyzed", [True, False])
def test_sr1_a_constant_reward_that_moved_nothing_is_no_evidence(tmp_path, analyzed):
    """The format reward on a base that always writes a readable answer pays every rollout 1: zero advantage,
    ΔW = 0, gain exactly 0 -- inconclusive with the reason, not a contradiction (measured in the claims study),
    whether or not the geometry analyzer ran (run.json's ‖ΔW‖ alone tells)."""
    for s in SEEDS:
        geo = {} if analyzed else None
        run_with(tmp_path, "full", "rlvr", s, "full", 0.6, geo=geo, record={"delta_norm": 0.3})
        run_with(tmp_path, "full", "rlvr", s, "full_random_reward", 0.7 + 0.01 * s, reward="random", geo=geo,
                 record={"delta_norm": 0.3})
        run_with(tmp_path, "full", "rlvr", s, "full_format_reward", 0.4, reward="format",
                 geo={"rel_update": 0.0} if analyzed else None, record={"delta_norm": 0.0})
    v, why = verdict(tmp_path, "SR1")
    assert v == INCONCLUSIVE and "ΔW = 0 in 3 of 3 runs" in why and "no advantage" in why, why


def test_runs_paid_a_spurious_reward_stay_out_of_the_reference_claims(tmp_path):
    # the verifier's runs gain less than SFT (P7 contradicted); spurious runs that gain a lot must not count
    for s in SEEDS:
        run_with(tmp_path, "full", "sft", s, "full", 0.7 + 0.01 * s)
        run_with(tmp_path, "full", "rlvr", s, "full", 0.5 + 0.01 * s)
        run_with(tmp_path, "full", "rlvr", s, "full_random_reward", 0.9, reward="random")
    v, why = verdict(tmp_path, "P7")
    assert v == CONTRADICTED and "-0.2" in why, why


# --- RD1 ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("rft_ood", "expected"), [(-0.01, SUPPORTED), (-0.2, CONTRADICTED), (None, INCONCLUSIVE)])
def test_rd1_on_policy_sft_forgets_like_rlvr(tmp_path, rft_ood, expected):
    for s in SEEDS:
        e = 0.003 * s
        run_with(tmp_path, "full", "sft", s, "full", 0.6, ood=-0.2 - e)
        run_with(tmp_path, "full", "rlvr", s, "full", 0.6, ood=-0.01 + e)
        if rft_ood is not None:
            run_with(tmp_path, "full", "rft", s, "full_rft", 0.6, ood=rft_ood - e)
    v, why = verdict(tmp_path, "RD1")
    assert v == expected, why
    if rft_ood is None:
        assert "full FT under rft and sft" in why


# --- OD1 ---------------------------------------------------------------------------------------------------


def _geo(sparsity: float, angle: float) -> dict:
    return {"sparsity_bf16": sparsity, "angle_mean_k16": angle, "drift": 0.1}


@pytest.mark.parametrize(("gkd", "expected"), [((0.5, 5.0), SUPPORTED), ((0.95, 1.0), CONTRADICTED),
                                               ((0.5, 20.0), CONTRADICTED), (None, INCONCLUSIVE)])
def test_od1_distillation_between_sft_and_rlvr(tmp_path, gkd, expected):
    for s in SEEDS:
        e = 0.01 * s
        run_with(tmp_path, "full", "sft", s, "full", 0.6, geo=_geo(0.1, 8.0))
        run_with(tmp_path, "full", "rlvr", s, "full", 0.6, geo=_geo(0.8, 2.0))
        if gkd is not None:
            run_with(tmp_path, "full", "gkd", s, "full_gkd", 0.6, geo=_geo(gkd[0] + e, gkd[1] + e))
    v, why = verdict(tmp_path, "OD1")
    assert v == expected, why


@pytest.mark.parametrize(("lo", "hi", "expected"), [
    (0.2, 0.8, SUPPORTED), (-0.3, 0.0, CONTRADICTED), (1.0, 1.4, CONTRADICTED), (-0.1, 0.5, INCONCLUSIVE),
    (0.5, 1.0, INCONCLUSIVE)])
def test_od1_rule_an_interval_touching_a_bound_is_outside(lo, hi, expected):
    """As judge() treats the null: an interval that reaches 0 or 1 from outside lies outside (0, 1); one that
    reaches it from inside is not inside (hand-made intervals, the same for both parts)."""
    from harness.claims.base import Part
    from harness.claims.distillation import between

    parts = [Part(name, (lo + hi) / 2, lo, hi, 3, 0.0, "between") for name in ("sparsity", "angle")]
    assert between(parts).verdict == expected


# --- PR1 ---------------------------------------------------------------------------------------------------


def test_split_half_on_counts_with_known_answers():
    # a prompt the base never solves (c = 0): always selected (w = 1), base's other half 0; the run's pass@2
    # from 2 of 4 samples right is 1 - C(2,2)/C(4,2) = 5/6
    assert split_half([{"n": 4, "c_base": 0, "c_run": 2}]) == (pytest.approx(5 / 6), 1.0)
    # c = 1 of 4: the first half all wrong w.p. C(3,2)/C(4,2) = 1/2, then the base's other half solves it: run − 1
    v, m = split_half([{"n": 4, "c_base": 1, "c_run": 0}])
    assert (v, m) == (pytest.approx(-1.0), pytest.approx(0.5))
    # a prompt the base always solves is never selected
    assert split_half([{"n": 4, "c_base": 4, "c_run": 4}])[1] == 0


def _prompts(c_base: int, c_run: int, n: int = 8) -> list[dict]:
    """5 hard prompts (c_base, c_run of n) and 5 the base always solves (never selected)."""
    return [{"prompt_id": f"p{i}", "group": "", "n": n, "c_base": c_base if i < 5 else n,
             "c_run": c_run if i < 5 else n} for i in range(10)]


# supported: the base never solves the hard prompts, the run does; contradicted: the base's other half solves
# them (c_base 2 of 8) and the run does not
@pytest.mark.parametrize(("counts", "expected"), [((0, 3), SUPPORTED), ((2, 0), CONTRADICTED), (None, INCONCLUSIVE)])
def test_pr1_prolonged_rl_solves_what_the_base_never_does(tmp_path, counts, expected):
    for s in SEEDS:
        files = {} if counts is None else {"passk.json": {"prompts": _prompts(counts[0], counts[1] + (s % 2))}}
        run_with(tmp_path, "full", "rlvr", s, "full", 0.6, files=files)
    v, why = verdict(tmp_path, "PR1")
    assert v == expected, why
    if counts is None:
        assert "passk.json" in why


def test_pr1_reads_the_longest_runs_not_the_largest_condition(tmp_path):
    # 4 seeds of 20 steps that solve nothing new (contradicted alone), 3 seeds of 120 steps that do (supported)
    for s in (0, 1, 2, 3):
        run_with(tmp_path, "full", "rlvr", s, "full", 0.6, steps=20,
                 files={"passk.json": {"prompts": _prompts(2, s % 2)}})
    for s in SEEDS:
        run_with(tmp_path, "full", "rlvr", s, "full", 0.6, steps=120,
                 files={"passk.json": {"prompts": _prompts(0, 3 + s % 2)}})
    v, why = verdict(tmp_path, "PR1")
    assert v == SUPPORTED, why


# --- PE1, PE3 ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("dora", "expected"), [(0.7, SUPPORTED), (0.5, CONTRADICTED), (None, INCONCLUSIVE)])
def test_pe1_dora_beats_full(tmp_path, dora, expected):
    for s in SEEDS:
        run_with(tmp_path, "full", "rlvr", s, "full", 0.6 + 0.01 * s)
        if dora is not None:
            run_with(tmp_path, "dora", "rlvr", s, "dora", dora + 0.02 * s)
    v, why = verdict(tmp_path, "PE1")
    assert v == expected, why


@pytest.mark.parametrize(("acc", "energy", "expected"), [
    (0.3, 0.2, SUPPORTED),        # both below LoRA, PiSSA's update in W0's top-k subspace
    (0.3, 0.002, CONTRADICTED),   # collapsed, but PiSSA's update off-principal: the stated cause is wrong
    (0.8, 0.2, CONTRADICTED),     # no collapse
    (None, None, INCONCLUSIVE)])
def test_pe2_pissa_milora_collapse(tmp_path, acc, energy, expected):
    for s in SEEDS:
        run_with(tmp_path, "lora", "rlvr", s, "lora_r8", 0.6 + 0.01 * s, geo={"energy_k16": 0.01 * (1 + 0.1 * s)})
        if acc is not None:
            run_with(tmp_path, "pissa", "rlvr", s, "pissa", acc + 0.02 * s, geo={"energy_k16": energy * (1 + s / 5)})
            run_with(tmp_path, "milora", "rlvr", s, "milora", acc + 0.03 * s, geo={"energy_k16": 0.001})
    v, why = verdict(tmp_path, "PE2")
    assert v == expected, why
    if acc is None:
        assert "PiSSA and LoRA r=8 under RLVR" in why


@pytest.mark.parametrize(("low", "expected"), [(0.4, SUPPORTED), (0.8, CONTRADICTED), (None, INCONCLUSIVE)])
def test_pe3_rank1_and_vera_floor(tmp_path, low, expected):
    for s in SEEDS:
        run_with(tmp_path, "full", "rlvr", s, "full", 0.6 + 0.01 * s)
        if low is not None:
            run_with(tmp_path, "lora", "rlvr", s, "lora_r1", low + 0.02 * s, r=1)
            run_with(tmp_path, "vera", "rlvr", s, "vera", low + 0.03 * s)
    v, why = verdict(tmp_path, "PE3")
    assert v == expected, why


# --- E1.B (issue 21): E1 per batch, from entk_steps.json ---------------------------------------------------


def _steps(per_rel: float) -> dict:
    return {"steps": [0, 10, 20], "intervals": [{"from": 0, "to": 10}, {"from": 10, "to": 20}],
            "mean_angle_per_rel": per_rel}


@pytest.mark.parametrize(("rl", "expected"), [(100.0, SUPPORTED), (900.0, CONTRADICTED), (None, INCONCLUSIVE)])
def test_e1b_per_batch_entk_rotation(tmp_path, rl, expected):
    for s in SEEDS:
        sft = {"entk_steps.json": _steps(400.0 * (1 + 0.05 * s))}
        make_run(tmp_path, "full", "sft", s, geo={"drift": 0.1}, files=sft)
        make_run(tmp_path, "full", "rlvr", s, geo={"drift": 0.1},
                 files={} if rl is None else {"entk_steps.json": _steps(rl * (1 + 0.07 * s))})
    v, why = verdict(tmp_path, "E1.B")
    assert v == expected, why
    if rl is None:
        assert "trajectory.entk=true" in why
