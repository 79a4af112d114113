"""More RL algorithms on the tiny model: ``objective=rloo`` (TRL's RLOOTrainer) trains, writes the same artifacts
as ``rlvr`` and its ledger counts equal the rewards TRL logged; GRPO's loss variants ``grpo | dapo | dr_grpo``
pass validation, reach TRL and each train one step; a bad loss type is one line, exit 2.

The task has single-digit gold answers named in the prompt, and the tiny model starts from a short format warm-up
on it (tests.conftest.warm_digits: ~40 % of its answers are right), with 16 completions per prompt so that groups
mix right and wrong answers (a nonzero advantage).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.launch.validate import check
from harness.measure.ledger import check_against_log, read_correct_rollouts, read_ledger
from tests.conftest import ROOT, compose, run_cli, warm_digits, write_digits

pytestmark = pytest.mark.integration  # real launches: see pyproject's marker

PROMPTS_PER_STEP, GENERATIONS = 8, 16
QUIET = ["logger=none", "eval.enabled=false", "entk.enabled=false"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """The digits task, one file for the module (so its format warm-up is built once)."""
    path = tmp_path_factory.mktemp("rloo-data") / "digits.jsonl"
    write_digits(path, 10)
    return path


@pytest.fixture(scope="module")
def rloo_job(tmp_path_factory, harness_cache, data):
    work = tmp_path_factory.mktemp("rloo")
    shutil.copy(data, work / "digits.jsonl")
    env = {**os.environ, "HARNESS_OUT": str(work / "out"), "PYTHONPATH": str(ROOT)}
    # cwd = work: task.path is relative (a path with '/' would nest the job dirs named after the overrides)
    r = subprocess.run([sys.executable, "-m", "harness.launch.run", "-m", "model=tiny", *QUIET, "task=jsonl",
                        "task.path=digits.jsonl", "task.n_train=8", "task.n_test=2", *warm_digits(10, data), "objective=rloo",
                        "objective.steps=2", f"objective.prompts_per_step={PROMPTS_PER_STEP}",
                        f"objective.num_generations={GENERATIONS}", "name=r"],
                       capture_output=True, text=True, timeout=600, env=env, cwd=work)
    assert r.returncode == 0, r.stderr[-3000:]
    (job,) = [p.parent for p in (work / "out" / "r").glob("*/run.json")]
    run = json.loads((job / "run.json").read_text())
    assert run["status"] == "done", run
    return job, run


def test_rloo_ledger_counts_equal_trl_logged_rewards(rloo_job):
    job, run = rloo_job
    assert run["objective"] == "rloo" and run["steps"] == 2
    steps = check_against_log(job)
    assert [s for s, *_ in steps] == [1, 2]
    total = 0
    for _, rollouts, correct, reward in steps:
        assert rollouts == PROMPTS_PER_STEP * GENERATIONS
        assert correct == round(reward * rollouts) and abs(correct - reward * rollouts) < 1e-6
        total += correct
    assert total > 0  # the check compared nonzero rewards
    log = [json.loads(line) for line in (job / "train_log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == [1, 2]
    for row in log:
        assert row["rewards/exact_answer/mean"] == pytest.approx(row["reward"])
        assert 0 <= row["frac_reward_zero_std"] <= 1 and math.isfinite(row["loss"])


def test_rloo_keeps_the_correct_rollouts_it_scored(rloo_job):
    job, _ = rloo_job
    correct_per_prompt: dict[str, int] = {}
    for _, pid, _, k in read_ledger(job / "ledger.csv"):
        correct_per_prompt[pid] = correct_per_prompt.get(pid, 0) + k
    kept = read_correct_rollouts(job / "correct_rollouts.jsonl")
    assert kept and set(kept) == {p for p, k in correct_per_prompt.items() if k > 0}
    from harness.data.tasks import score

    answers = {json.loads(line)["prompt"]: json.loads(line)["answer"]
               for line in (job.parent.parent.parent / "digits.jsonl").read_text().splitlines()}
    golds = set(answers.values())
    for pid, rows in kept.items():
        assert len(rows) == min(4, correct_per_prompt[pid])
        for r in rows:
            assert r["ids"] and any(score(r["text"], g) == 1 for g in golds)


def test_rloo_uses_the_adapters_rlvr_lr_and_moves_the_weights(rloo_job):
    job, run = rloo_job
    cfg = compose("model=tiny", "objective=rloo")
    assert cfg.objective.lr is None and run["lr"] == pytest.approx(cfg.adapter.lr.rlvr)
    log = [json.loads(line) for line in (job / "train_log.jsonl").read_text().splitlines()]
    assert any(row["frac_reward_zero_std"] < 1 for row in log)  # a group with a nonzero leave-one-out advantage
    assert run["delta_norm"] > 0


def test_rloo_has_no_grpo_only_keys():
    # loss_type / scale_rewards are GRPO's; RLOOConfig has neither, so the composed config must not offer them
    cfg = compose("model=tiny", "objective=rloo", *QUIET)
    assert check(cfg) == []
    assert "loss_type" not in cfg.objective and "scale_rewards" not in cfg.objective
    bad = compose("model=tiny", "objective=rloo", "objective.normalize_advantages=1", *QUIET)
    assert check(bad) == ["error: bad objective.normalize_advantages 1; valid: true | false"]


# --- GRPO's loss variants ----------------------------------------------------------------------------------

LOSS_TYPES = ("grpo", "dapo", "dr_grpo")


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_grpo_loss_variant_trains_one_step(loss_type, tmp_path, data):
    from harness.data.models import load_base
    from harness.data.tasks import build_task
    from harness.train.adapters import build_adapter
    from harness.train.objectives import train
    from harness.train.warmup import resolve_base

    cfg = compose("model=tiny", *warm_digits(10, data), "adapter=full", "objective=rlvr", f"objective.loss_type={loss_type}", "task=jsonl",
                  f"task.path={data}", "task.n_train=8", "task.n_test=2", "objective.steps=1",
                  f"objective.prompts_per_step={PROMPTS_PER_STEP}", f"objective.num_generations={GENERATIONS}",
                  *QUIET)
    assert check(cfg) == []
    model, tok = load_base(cfg.model, resolve_base(cfg.model))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trained = build_adapter(cfg.adapter, seed=0).prepare(model)
    trainer = train("rlvr", model=trained, tokenizer=tok, task=build_task(cfg.task), cfg=cfg.objective, lr=1e-3,
                    seed=0, out_dir=tmp_path, device="cpu", label=loss_type)
    assert trainer.loss_type == loss_type and trainer.args.loss_type == loss_type  # what TRL's loss branches on
    assert trainer.state.global_step == 1
    (row,) = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert row["step"] == 1 and math.isfinite(row["loss"])
    ((_, rollouts, correct, reward),) = check_against_log(tmp_path)
    assert rollouts == PROMPTS_PER_STEP * GENERATIONS and correct == round(reward * rollouts) and correct > 0
    moved = any(not (v == before[k]).all() for k, v in model.state_dict().items())
    assert row["frac_reward_zero_std"] < 1 and moved  # a group with mixed rewards: a nonzero step


def test_loss_types_sweep_validates(tmp_path):
    from harness.launch.validate import check_launch

    assert check_launch(["model=tiny", "logger=none", "objective=rlvr", "objective.loss_type=grpo,dapo,dr_grpo"],
                        multirun=True, conf_dir=ROOT / "harness" / "conf") == []


def test_bad_loss_type_is_one_line(tmp_path):
    r = run_cli("model=tiny", "logger=none", "objective=rlvr", "objective.loss_type=drgrpo", out=tmp_path)
    assert r.returncode == 2, r.stderr[-2000:]
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("error: bad objective.loss_type 'drgrpo'; valid: grpo | dr_grpo | dapo"), line
    assert not any(tmp_path.iterdir())
