"""Rewards as plug-ins and on-policy SFT on the tiny model (issue 22), each asserting what training did:

- ``objective.reward=random`` at rate 0 (and 1) pays every rollout alike: zero advantage, so the weights do
  not move at all, while the ledger still records the verifier's verdicts; at rate 0.5 they move;
- ``objective.reward=format`` and ``negated`` are what TRL logs and optimizes, not the verifier's score;
- ``objective=rft`` trains only on the samples the verifier accepted: every row it wrote scores 1, and the
  trainer's dataset is exactly those rows.

The task and warm-up are tests.test_rloo's: single-digit answers named in the prompt, ~40 % right at the start.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.launch.validate import check
from harness.measure.ledger import read_ledger
from tests.conftest import compose, warm_digits, write_digits

pytestmark = pytest.mark.integration

PROMPTS_PER_STEP, GENERATIONS = 8, 16
QUIET = ["logger=none", "eval.enabled=false", "entk.enabled=false"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("rewards-data") / "digits.jsonl"
    write_digits(path, 10)
    return path


def trained(data: Path, out: Path, objective: str, *overrides: str, steps: int = 1):
    """(trainer, weights before, model, task) after ``steps`` steps of ``objective`` on full fine-tuning."""
    from harness.data.models import load_base
    from harness.data.tasks import build_task
    from harness.train.adapters import build_adapter
    from harness.train.objectives import train
    from harness.train.warmup import resolve_base

    group = ([f"objective.prompts_per_step={PROMPTS_PER_STEP}", f"objective.num_generations={GENERATIONS}"]
             if objective in ("rlvr", "rloo") else [])
    cfg = compose("model=tiny", *warm_digits(10, data), "adapter=full", f"objective={objective}", "task=jsonl",
                  f"task.path={data}", "task.n_train=8", "task.n_test=2", f"objective.steps={steps}", *group,
                  *overrides, *QUIET)
    assert check(cfg) == []
    model, tok = load_base(cfg.model, resolve_base(cfg.model))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    task = build_task(cfg.task)
    trainer = train(objective, model=build_adapter(cfg.adapter, seed=0).prepare(model), tokenizer=tok, task=task,
                    cfg=cfg.objective, lr=1e-3, seed=0, out_dir=out, device="cpu", label=objective)
    return trainer, before, model, task


def moved(model, before) -> bool:
    return any(not (v == before[k]).all() for k, v in model.state_dict().items())


def log_rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_a_constant_random_reward_gives_zero_advantage_and_zero_update(rate, data, tmp_path):
    _, before, model, _ = trained(data, tmp_path, "rlvr", "objective.reward=random", f"objective.reward_rate={rate}")
    (row,) = log_rows(tmp_path)
    assert row["rewards/random/mean"] == rate and row["frac_reward_zero_std"] == 1.0
    assert not moved(model, before)  # every group's rewards alike: no advantage, no gradient, no Adam step
    # the ledger still holds the verifier's verdicts, not what was paid
    correct = sum(k for *_, k in read_ledger(tmp_path / "ledger.csv"))
    assert 0 < correct < PROMPTS_PER_STEP * GENERATIONS


def test_a_random_reward_at_half_rate_moves_the_weights(data, tmp_path):
    _, before, model, _ = trained(data, tmp_path, "rlvr", "objective.reward=random", "objective.reward_rate=0.5")
    (row,) = log_rows(tmp_path)
    assert 0.2 < row["rewards/random/mean"] < 0.8 and row["frac_reward_zero_std"] < 1
    assert moved(model, before)


@pytest.mark.parametrize("reward", ["format", "negated"])
def test_the_paid_reward_is_the_registered_one(reward, data, tmp_path):
    trained(data, tmp_path, "rloo", f"objective.reward={reward}")
    (row,) = log_rows(tmp_path)
    paid = row[f"rewards/{reward}/mean"]
    rows = read_ledger(tmp_path / "ledger.csv")
    accuracy = sum(k for *_, k in rows) / sum(n for _, _, n, _ in rows)
    if reward == "negated":
        assert paid == pytest.approx(1 - accuracy)
    else:  # a readable digit, right or wrong, is paid: every right answer and some wrong ones (~60 % are wrong
        # here), so strictly more than the verifier would pay
        assert paid > accuracy


def test_rft_trains_only_on_samples_the_verifier_accepted(data, tmp_path):
    trainer, before, model, task = trained(data, tmp_path, "rft", "objective.samples_per_prompt=4", steps=2)
    counts = json.loads((tmp_path / "rft.json").read_text())
    rows = [json.loads(line) for line in (tmp_path / "rft_samples.jsonl").read_text().splitlines()]
    gold = {e.id: e.answer for e in task.train}
    assert counts["samples"] == 8 * 4 and 0 < counts["accepted"] < counts["samples"]
    assert rows and len(rows) == counts["rows"] <= counts["accepted"]
    assert all(task.score(r["completion"], gold[r["prompt_id"]]) == 1.0 for r in rows)
    assert len({(r["prompt_id"], r["completion"]) for r in rows}) == len(rows)  # each distinct text once
    # the trainer's dataset is exactly those rows: its completion tokens decode to the accepted texts
    tok = trainer.processing_class
    seen = set()
    for ex in trainer.train_dataset:
        ids = [i for i, label in zip(ex["input_ids"], ex["labels"]) if label != -100]
        seen.add(tok.decode(ids, skip_special_tokens=True).strip())
    assert seen == {r["completion"].strip() for r in rows}
    assert trainer.state.global_step == 2 and moved(model, before)


def test_bad_reward_names_and_rates_are_one_line():
    (line,) = check(compose("model=tiny", "objective=rlvr", "objective.reward=coin", *QUIET))
    assert line.startswith("error: unknown objective.reward 'coin'")
    assert line.endswith("valid: format, negated, random, verifier")
    assert check(compose("model=tiny", "objective=rlvr", "objective.reward_rate=1.5", *QUIET)) == [
        "error: bad objective.reward_rate 1.5; valid: a number >= 0 and <= 1"]
