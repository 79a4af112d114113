"""Unlearnability on hand-built data: classification (every class, the τ boundary, the all-seeds rule), the
ledger aggregation, and the sweep section (tables, SFT cross-check, similarity groups, plots)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.measure.classify import (
    EASY,
    LEARNABLE,
    MIXED,
    NEVER,
    UNKNOWN,
    UNLEARNABLE,
    across_seeds,
    classify,
    hard_fractions,
    spread,
)
from harness.measure.ledger import check_against_log, per_prompt, per_step, read_ledger
from harness.measure.passrate import PROMPTS_COLUMNS

TAU = 0.1


@pytest.mark.parametrize("p0,p1,seen,expected", [
    (0.5, 0.0, 0, EASY),             # easy whatever happens later
    (0.1001, 0.0, 0, EASY),          # just above τ
    (0.1, 0.5, 3, LEARNABLE),        # start exactly τ is hard
    (0.0, 0.1001, 2, LEARNABLE),
    (0.0, 0.2, 0, LEARNABLE),        # learned without a correct rollout of its own
    (0.0, 0.1, 5, UNLEARNABLE),      # end exactly τ is not learned
    (0.05, 0.0, 1, UNLEARNABLE),
    (0.0, 0.0, 0, NEVER),
    (0.1, 0.1, 0, NEVER),
    (float("nan"), 0.0, 0, UNKNOWN),
])
def test_classify_every_class_and_tau_boundary(p0, p1, seen, expected):
    assert classify(p0, p1, seen, TAU) == expected


def test_tau_is_a_setting():
    assert classify(0.15, 0.0, 1, tau=0.1) == EASY
    assert classify(0.15, 0.0, 1, tau=0.2) == UNLEARNABLE
    assert classify(0.15, 0.25, 1, tau=0.2) == LEARNABLE


def test_all_seeds_rule():
    assert across_seeds([UNLEARNABLE] * 3) == UNLEARNABLE
    assert across_seeds([UNLEARNABLE, UNLEARNABLE, LEARNABLE]) == MIXED
    assert across_seeds([UNLEARNABLE, NEVER, UNLEARNABLE]) == MIXED  # unrewarded in one seed: not unlearnable
    assert across_seeds([LEARNABLE, LEARNABLE]) == LEARNABLE
    assert across_seeds([EASY]) == EASY
    assert across_seeds([]) == UNKNOWN


def test_hard_fractions_and_spread():
    f = hard_fractions([EASY, LEARNABLE, UNLEARNABLE, UNLEARNABLE, NEVER])
    assert f["hard"] == 4 and f[LEARNABLE] == 0.25 and f[UNLEARNABLE] == 0.5 and f[NEVER] == 0.25
    assert math.isnan(hard_fractions([EASY])[UNLEARNABLE])
    m, sd, lo, hi = spread([0.2, 0.4, float("nan")])
    assert m == pytest.approx(0.3) and sd == pytest.approx(math.sqrt(0.02)) and (lo, hi) == (0.2, 0.4)
    assert spread([0.5])[1] == 0.0


def _write_ledger(path: Path, rows):
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["step", "prompt_id", "rollouts", "correct"])
        w.writerows(rows)


def test_ledger_aggregation(tmp_path):
    _write_ledger(tmp_path / "ledger.csv", [(0, "a", 4, 0), (0, "b", 4, 1), (1, "a", 4, 2), (2, "a", 4, 0),
                                           (2, "c", 4, 0)])
    rows = read_ledger(tmp_path / "ledger.csv")
    led = per_prompt(rows)
    assert (led["a"].rollouts, led["a"].correct, led["a"].visits, led["a"].first_correct_step) == (12, 2, 3, 1)
    assert (led["b"].correct, led["b"].first_correct_step) == (1, 0)
    assert (led["c"].correct, led["c"].first_correct_step) == (0, -1)
    assert per_step(rows) == {0: (8, 1), 1: (4, 2), 2: (8, 0)}
    assert read_ledger(tmp_path / "missing.csv") == []
    # classification from ledger counts: a hard prompt with correct rollouts that stays <= τ is unlearnable
    assert classify(0.0, 0.0, led["a"].correct) == UNLEARNABLE
    assert classify(0.0, 0.0, led["c"].correct) == NEVER
    # ledger step s is logged by TRL as step s + 1
    (tmp_path / "train_log.jsonl").write_text("\n".join(json.dumps({"step": s, "reward": r})
                                                        for s, r in [(1, 0.125), (2, 0.5), (3, 0.0)]))
    assert [(s, k, r * n) for s, n, k, r in check_against_log(tmp_path)] == [(1, 1, 1.0), (2, 2, 2.0), (3, 0, 0.0)]


# --- a hand-built sweep ----------------------------------------------------------------------------------

# prompt: (pass_start, {seed: (pass_end, correct_seen)} for RLVR, {seed: pass_end} for SFT)
PROMPTS = {
    "E1": (0.5, {s: (0.6, 5) for s in range(3)}, {s: 0.9 for s in range(3)}),
    "E2": (0.4, {s: (0.5, 5) for s in range(3)}, {s: 0.9 for s in range(3)}),
    "E3": (0.5, {s: (0.5, 0) for s in range(3)}, {s: 0.9 for s in range(3)}),     # never sampled in training
    "E4": (0.5, {s: (0.5, 0) for s in range(3)}, {s: 0.9 for s in range(3)}),     # sampled, never correct
    "L": (0.0, {s: (0.5, 2) for s in range(3)}, {s: 0.9 for s in range(3)}),
    "U": (0.1, {s: (0.0, 1) for s in range(3)}, {s: 0.5 for s in range(3)}),      # start at τ: hard
    "B": (0.0, {s: (0.1, 3) for s in range(3)}, {s: 0.0 for s in range(3)}),      # end at τ: not learned
    "M": (0.05, {0: (0.0, 1), 1: (0.0, 2), 2: (0.3, 2)}, {s: 0.3 for s in range(3)}),  # mixed over seeds
    "N": (0.0, {s: (0.0, 0) for s in range(3)}, {s: 0.0 for s in range(3)}),
}
TEST_PROMPTS = {"T1": (0.0, 0.2), "T2": (0.5, 0.5)}


def _job(sweep: Path, objective: str, seed: int, dim: int = 64) -> Path:
    job = sweep / f"adapter=lora,objective={objective},seed={seed}"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "config.yaml").write_text(f"passrate:\n  tau: {TAU}\n  grad_sim:\n    n_boot: 200\n")
    (job / ".hydra" / "overrides.yaml").write_text(
        f"- adapter=lora\n- objective={objective}\n- seed={seed}\n- logger=none\n")
    (job / "run.json").write_text(json.dumps({"status": "done", "adapter": "lora", "objective": objective,
                                              "seed": seed}))
    rows = []
    for pid, (p0, rl, sft) in PROMPTS.items():
        p1, c = rl[seed] if objective == "rlvr" else (sft[seed], 0)
        rows.append({"prompt_id": pid, "split": "train", "group": "", "pass_start": p0, "pass_end": p1, "k": 8,
                     "rollouts_seen": (0 if pid == "E3" else 16) if objective == "rlvr" else 0, "correct_seen": c,
                     "gold_seen": int(objective == "sft"), "visits": 4, "first_correct_step": 0, "class": "",
                     "grad": 0})
    for pid, (p0, p1) in TEST_PROMPTS.items():
        rows.append({"prompt_id": pid, "split": "test", "group": "", "pass_start": p0, "pass_end": p1, "k": 8,
                     "rollouts_seen": 0, "correct_seen": 0, "gold_seen": 0, "visits": 0,
                     "first_correct_step": -1, "class": "", "grad": 0})
    pd.DataFrame(rows, columns=PROMPTS_COLUMNS).to_csv(job / "prompts.csv", index=False)
    if objective == "rlvr":
        (job / "ledger.csv").write_text("step,prompt_id,rollouts,correct\n")  # what marks an RL run
        # easy/learnable prompts share a direction; the unlearnable ones point elsewhere
        rng = np.random.default_rng(seed)
        common = rng.normal(size=dim)
        ids = [p for p, (_, rl, _) in PROMPTS.items() if rl[seed][1] > 0]
        sk = np.stack([(common if p in ("E1", "E2", "L") else 0) + 0.5 * rng.normal(size=dim) for p in ids])
        np.savez(job / "grad_sketch.npz", ids=np.array(ids), sketch=sk.astype(np.float32),
                 norm=np.ones(len(ids)), n_tokens=np.ones(len(ids)), n_rollouts=np.full(len(ids), 4), dim=dim,
                 seed=0, params="matrices")
    return job


@pytest.fixture
def sweep(tmp_path):
    for seed in range(3):
        _job(tmp_path, "rlvr", seed)
        _job(tmp_path, "sft", seed)
    return tmp_path


def test_section_none_without_prompts(tmp_path):
    from harness.analysis.unlearn import unlearnability_section

    assert unlearnability_section(tmp_path) is None


def test_section_on_hand_built_sweep(sweep, tmp_path):
    from harness.analysis.unlearn import unlearnability_section

    out = tmp_path / "report"
    text = unlearnability_section(sweep, out)
    assert text and text.startswith("## Unlearnability")
    for name in ("unlearnability.csv", "unlearnability.md", "unlearnability_scatter.png",
                 "unlearnability_gradsim.png", "unlearnability_summary.csv", "unlearnability_sft.csv"):
        assert (out / name).exists(), name

    df = pd.read_csv(out / "unlearnability.csv")
    rl = df[(df.objective == "rlvr") & (df.split == "train")]
    per_seed = {(r.prompt_id, r.seed): r["class"] for _, r in rl.iterrows()}
    assert per_seed[("U", 0)] == UNLEARNABLE and per_seed[("B", 1)] == UNLEARNABLE
    assert per_seed[("M", 0)] == UNLEARNABLE and per_seed[("M", 2)] == LEARNABLE
    assert per_seed[("N", 0)] == NEVER and per_seed[("E1", 0)] == EASY
    all_seeds = rl.drop_duplicates("prompt_id").set_index("prompt_id").class_all_seeds
    assert all_seeds.to_dict() == {"E1": EASY, "E2": EASY, "E3": EASY, "E4": EASY, "L": LEARNABLE,
                                   "U": UNLEARNABLE, "B": UNLEARNABLE, "M": MIXED, "N": NEVER}

    s = pd.read_csv(out / "unlearnability_summary.csv").set_index("condition").loc["lora/rlvr"]
    assert s.hard == 5 and s.seeds == 3
    assert s[UNLEARNABLE] == pytest.approx((0.6 + 0.6 + 0.4) / 3)     # {U,B,M}, {U,B,M}, {U,B}
    assert s[f"{UNLEARNABLE}_min"] == pytest.approx(0.4) and s[f"{UNLEARNABLE}_max"] == pytest.approx(0.6)
    assert s[f"{UNLEARNABLE}_all_seeds"] == pytest.approx(2 / 5)       # U, B
    assert s[f"{MIXED}_all_seeds"] == pytest.approx(1 / 5)
    assert s.test_hard_learned == pytest.approx(1.0)                   # T1 generalized

    cross = pd.read_csv(out / "unlearnability_sft.csv", dtype={"seed": str}).set_index("seed")
    assert cross.loc["0", "unlearnable"] == 3 and cross.loc["0", "fraction"] == pytest.approx(2 / 3)  # U, M
    assert cross.loc["2", "fraction"] == pytest.approx(1 / 2)                                         # U of U, B
    assert cross.loc["all", "unlearnable"] == 2 and cross.loc["all", "fraction"] == pytest.approx(0.5)

    sims = pd.read_csv(out / "unlearnability_similarity.csv").set_index("group")
    assert sims.loc[UNLEARNABLE, "n"] == 2 and sims.loc[EASY, "n"] == 2 and sims.loc[LEARNABLE, "n"] == 1
    assert sims.loc[EASY, "mean_sim"] > sims.loc[UNLEARNABLE, "mean_sim"]
    assert sims.loc[EASY, "ci_lo"] <= sims.loc[EASY, "mean_sim"] <= sims.loc[EASY, "ci_hi"]
    # 2 easy vs 2 unlearnable prompts: 6 distinct labellings, so the permutation p cannot go below 1/3
    assert 1 / 3 - 0.02 <= sims.loc[EASY, "p_vs_unlearnable"] <= 1
    assert sims.loc[EASY, "diff_vs_unlearnable"] == pytest.approx(
        sims.loc[EASY, "mean_sim"] - sims.loc[UNLEARNABLE, "mean_sim"])
    # prompts left out of each group, and why
    assert (sims.loc[EASY, "prompts"], sims.loc[EASY, "left_not_sampled"], sims.loc[EASY, "left_no_correct"],
            sims.loc[EASY, "left_not_kept"]) == (4, 1, 1, 0)
    assert (sims.loc[NEVER, "prompts"], sims.loc[NEVER, "n"]) == (1, 0)
    assert (sims.loc[MIXED, "prompts"], sims.loc[MIXED, "n"]) == (1, 1)
    assert "SFT cross-check" in text and "| lora/rlvr | unlearnable | 2/2 | 0, 0, 0 |" in text
    assert "| lora/rlvr | easy | 2/4 | 1, 1, 0 |" in text
