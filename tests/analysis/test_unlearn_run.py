"""A real 2-step tiny-model sweep with pass rates on (one start per seed): the ledger counts equal the rewards TRL
logged, prompts.csv agrees with the ledger, the start pass rates are computed once per (base, seed), the correct
rollouts kept in training are the ones TRL scored, gradient sketches of them and the sweep section come out.

The task has single-digit gold answers named in the prompt, and the tiny model starts from a short format warm-up
on it (:func:`tests.conftest.warm_digits`), so its rollouts are correct often enough to count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from harness.measure.ledger import check_against_log, per_prompt, read_ledger
from tests.conftest import ROOT, warm_digits, write_digits

pytestmark = pytest.mark.integration  # real launches: see pyproject's marker

PROMPTS_PER_STEP, GENERATIONS = 4, 8


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, harness_cache):
    work = tmp_path_factory.mktemp("unlearn_run")
    write_digits(work / "digits.jsonl", 6)
    env = {**os.environ, "HARNESS_OUT": str(work / "out"), "PYTHONPATH": str(ROOT)}
    # cwd = work: task.path is relative (a path with '/' would nest the job dirs named after the overrides)
    r = subprocess.run([sys.executable, "-m", "harness.launch.run", "-m", "model=tiny", "logger=none", "eval.enabled=false",
                        "task=jsonl", "task.path=digits.jsonl", "task.n_train=4", "task.n_test=2", *warm_digits(6),
                        "objective=rlvr,sft", "seed=0,1", "objective.steps=2",
                        f"++objective.prompts_per_step={PROMPTS_PER_STEP}",
                        f"++objective.num_generations={GENERATIONS}", "++objective.max_completion_length=16",
                        "passrate.enabled=true",
                        "passrate.grad_sim.dim=512", "passrate.start_seeded=true", "name=u"],
                       capture_output=True, text=True, timeout=600, env=env, cwd=work)
    assert r.returncode == 0, r.stderr[-3000:]
    jobs = sorted((work / "out" / "u").glob("*/run.json"))
    assert len(jobs) == 4
    for j in jobs:
        assert json.loads(j.read_text())["status"] == "done", (j.parent / "error.txt").read_text()
    return work, [j.parent for j in jobs]


def _objective(job) -> str:
    return json.loads((job / "run.json").read_text())["objective"]


def test_ledger_counts_equal_trl_logged_rewards(sweep):
    _, jobs = sweep
    total = 0
    for job in (j for j in jobs if _objective(j) == "rlvr"):
        steps = check_against_log(job)
        assert [s for s, *_ in steps] == [1, 2]
        for _, rollouts, correct, reward in steps:
            assert rollouts == PROMPTS_PER_STEP * GENERATIONS
            assert correct == round(reward * rollouts) and abs(correct - reward * rollouts) < 1e-6
            total += correct
        logged = [json.loads(line) for line in (job / "train_log.jsonl").read_text().splitlines()]
        assert all(row["rewards/exact_answer/mean"] == pytest.approx(row["reward"]) for row in logged)
    assert total > 0  # the check compared non-zero rewards


def test_prompts_csv_agrees_with_ledger(sweep):
    _, jobs = sweep
    for job in jobs:
        df = pd.read_csv(job / "prompts.csv")
        assert list(df.columns[:9]) == ["prompt_id", "split", "group", "pass_start", "pass_end", "k",
                                        "rollouts_seen", "correct_seen", "gold_seen"]
        assert (df.split == "train").sum() == 4 and (df.split == "test").sum() == 2
        assert df.pass_start.between(0, 1).all() and df.pass_end.between(0, 1).all()
        test = df[df.split == "test"]
        assert (test.rollouts_seen == 0).all() and (test.gold_seen == 0).all()
        train = df[df.split == "train"].set_index("prompt_id")
        if _objective(job) == "rlvr":
            led = per_prompt(read_ledger(job / "ledger.csv"))
            assert train.rollouts_seen.sum() == 2 * PROMPTS_PER_STEP * GENERATIONS
            for pid, e in led.items():
                assert (train.loc[pid, "rollouts_seen"], train.loc[pid, "correct_seen"]) == (e.rollouts, e.correct)
            assert (train.gold_seen == 0).all()
        else:
            assert (train.gold_seen == 1).all() and (train.rollouts_seen == 0).all()


def test_start_pass_rates_computed_once_per_base_and_seed(sweep, harness_cache):
    _, jobs = sweep
    info = {j: json.loads((j / "passrate.json").read_text()) for j in jobs}
    seed_of = {j: json.loads((j / "run.json").read_text())["seed"] for j in jobs}
    for seed in (0, 1):
        same = [j for j in jobs if seed_of[j] == seed]  # the RLVR and the SFT run of this seed
        assert len(same) == 2 and info[same[0]]["start_key"] == info[same[1]]["start_key"]
        assert info[same[0]]["settings"]["seed"] == seed
        starts = [pd.read_csv(j / "prompts.csv").set_index("prompt_id").pass_start for j in same]
        pd.testing.assert_series_equal(starts[0], starts[1])
        assert sum(info[j]["seconds"]["start"] > 0 for j in same) <= 1  # computed once, reused
    keys = {i["start_key"] for i in info.values()}
    assert len(keys) == 2  # one start per seed
    for k in keys:
        assert (harness_cache / "passrate" / f"{k}.json").exists()


def test_gradient_sketches_from_training_rollouts(sweep):
    from harness.data.models import load_model
    from harness.data.tasks import build_task
    from harness.measure.ledger import read_correct_rollouts

    work, jobs = sweep
    for job in (j for j in jobs if _objective(j) == "rlvr"):
        df = pd.read_csv(job / "prompts.csv")
        train = df[df.split == "train"].set_index("prompt_id")
        rewarded = set(train[train.correct_seen > 0].index)
        kept = read_correct_rollouts(job / "correct_rollouts.jsonl")
        # every rewarded prompt kept its first correct rollouts (at most 4), and only those
        assert set(kept) == rewarded
        for pid, rows in kept.items():
            assert len(rows) == min(4, train.loc[pid, "correct_seen"])
            assert [r["step"] for r in rows] == sorted(r["step"] for r in rows) and rows[0]["step"] in (0, 1)
        z = np.load(job / "grad_sketch.npz")
        ids = {str(i) for i in z["ids"]}
        assert ids == rewarded and z["sketch"].shape == (len(ids), 512)
        assert set(z["n_rollouts"].tolist()) <= {1, 2, 3, 4} and str(z["source"]) == "training"
        assert str(z["at"]) == "base"
        assert set(train[train.grad == 1].index) == ids
        info = json.loads((job / "passrate.json").read_text())["grad_sim"]
        assert info["sketched"] == len(ids)
        assert info["left_out"]["correct_not_kept"] == 0
        assert info["left_out"]["not_sampled"] == (train.rollouts_seen == 0).sum()
        # the kept token ids are what TRL scored: they decode to the completion text, which scores 1
        cfg = OmegaConf.load(job / ".hydra" / "config.yaml")
        cfg.task.path = str(work / "digits.jsonl")
        task = build_task(cfg.task)
        gold = {e.id: e.answer for e in task.train}
        _, tok = load_model(json.loads((job / "run.json").read_text())["base_dir"])
        for pid, rows in kept.items():
            for r in rows:
                assert tok.decode(r["ids"], skip_special_tokens=True) == r["text"]
                assert task.score(r["text"], gold[pid]) == 1.0


def test_section_on_real_sweep(sweep):
    from harness.analysis.unlearn import unlearnability_section

    work, _ = sweep
    text = unlearnability_section(work / "out" / "u", work / "report")
    assert text is not None and "lora/rlvr" in text and "lora/sft" in text
    df = pd.read_csv(work / "report" / "unlearnability.csv")
    assert set(df.objective) == {"rlvr", "sft"} and set(df.seed) == {0, 1}
    assert (work / "report" / "unlearnability_scatter.png").exists()


def test_sweep_report_has_table_4(sweep):
    work, _ = sweep
    text = (work / "out" / "u" / "report.md").read_text()  # written when the multirun ended
    assert "## Table 4 — unlearnability" in text and "SFT cross-check" in text


def test_sweep_file():
    from tests.conftest import compose

    params = OmegaConf.load(ROOT / "harness" / "conf" / "sweeps" / "unlearnability.yaml").hydra.sweeper.params
    assert set(str(params.objective).split(",")) == {"rlvr", "sft"}
    assert len(str(params.seed).split(",")) >= 3
    cfg = compose("sweeps=unlearnability", "objective=rlvr")  # the study's overlay wins over the defaults
    assert cfg.passrate.enabled is True and cfg.passrate.start_seeded is True
    # ~4 visits of each of the 40 training prompts
    assert cfg.objective.steps * cfg.objective.prompts_per_step / cfg.task.n_train >= 3
