"""U4's retraining: the training split cut to a first study's unlearnable prompts (any / every seed), the launch
checks (one line, exit 2, before anything loads), and a real tiny-model GRPO run that trains and measures only
those prompts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from omegaconf import OmegaConf

from harness.core.registry import BadValue
from harness.measure.classify import CLASSES
from harness.train.retrain import CLASSES as RETRAIN_CLASSES
from harness.train.retrain import check, restrict, selected
from tests.conftest import ROOT, compose, run_cli, warm_digits, write_digits


def first_study(root, classes_per_run: list[dict[str, str]], rl: bool = True):
    """A first study as passrate writes it: one dir per run with prompts.csv (and ledger.csv for RL runs)."""
    for i, classes in enumerate(classes_per_run):
        run = root / f"run{i}"
        run.mkdir(parents=True)
        rows = [{"prompt_id": p, "split": "train", "class": c} for p, c in classes.items()]
        rows.append({"prompt_id": "held", "split": "test", "class": "unlearnable"})
        pd.DataFrame(rows).to_csv(run / "prompts.csv", index=False)
        if rl:
            (run / "ledger.csv").write_text("step,prompt_id\n")
    return root


def test_classes_are_the_ones_passrate_writes():
    assert set(RETRAIN_CLASSES) == set(CLASSES)


@pytest.mark.parametrize(("seeds", "want"), [("any", ["a", "b", "c"]), ("every", ["a"])])
def test_selected_any_or_every_seed(tmp_path, seeds, want):
    first_study(tmp_path, [{"a": "unlearnable", "b": "unlearnable", "c": "easy"},
                           {"a": "unlearnable", "b": "learnable", "c": "unlearnable"}])
    ids, info = selected(OmegaConf.create({"from": str(tmp_path), "classes": ["unlearnable"], "seeds": seeds}))
    assert ids == want and info["per_run"] == [2, 2]  # the held-out prompt is never selected


def test_restrict_keeps_the_task_order_and_the_held_out_split(tmp_path):
    from harness.data.tasks import build_task

    task = build_task(compose("task=arithmetic_study", "task.n_train=12", "task.n_test=4").task)
    pick = [task.train[7].id, task.train[2].id, "other-task-prompt"]
    first_study(tmp_path, [{p: "unlearnable" for p in pick}])
    cut, info = restrict(OmegaConf.create({"from": str(tmp_path), "classes": ["unlearnable"], "seeds": "any"}), task)
    assert [e.id for e in cut.train] == [task.train[2].id, task.train[7].id] and cut.test == task.test
    assert info["selected"] == 3 and info["kept"] == 2


def test_restrict_refuses_a_study_of_another_task(tmp_path):
    from harness.data.tasks import build_task

    task = build_task(compose("task=arithmetic_study", "task.n_train=4", "task.n_test=2").task)
    first_study(tmp_path, [{"nope": "unlearnable"}])
    with pytest.raises(BadValue, match="retrain.from"):
        restrict(OmegaConf.create({"from": str(tmp_path), "classes": ["unlearnable"]}), task)


def test_check_wants_rl_runs_with_prompts_csv(tmp_path):
    with pytest.raises(BadValue, match="sweep or run directory"):
        check(OmegaConf.create({"from": str(tmp_path / "missing")}))
    first_study(tmp_path / "sft", [{"a": "unlearnable"}], rl=False)
    with pytest.raises(BadValue, match="ledger.csv"):
        check(OmegaConf.create({"from": str(tmp_path / "sft")}))
    check(OmegaConf.create({"from": str(first_study(tmp_path / "rl", [{"a": "unlearnable"}]))}))


def test_a_first_study_of_another_task_fails_at_launch(tmp_path):
    """The claims study trains on arithmetic_study; the retrain study on the default arithmetic task finds none of
    its prompts: one line naming retrain.from and the fix, exit 2, before anything loads."""
    from harness.data.tasks import build_task

    task = build_task(compose("task=arithmetic_study").task)
    first = first_study(tmp_path / "first", [{e.id: "unlearnable" for e in task.train[:3]}])
    r = run_cli("model=tiny", "task=arithmetic", f"retrain.from={first}", "logger=none", out=tmp_path / "out",
                timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "retrain.from" in lines[0] and "set task=" in lines[0], lines
    assert not any((tmp_path / "out").rglob("run.json"))


@pytest.mark.parametrize(("args", "key"), [
    (["sweeps=unlearnable_retrain"], "retrain.from None"),                       # the study without its source
    (["retrain.from=/nonexistent/claims"], "retrain.from '/nonexistent/claims'"),
    (["retrain.seeds=some"], "retrain.seeds 'some'"),
    (["augment.kinds=[paraphrase]"], "augment.kinds"),
])
def test_bad_retrain_and_augment_settings_exit_2(tmp_path, args, key):
    r = run_cli("-m" if args[0].startswith("sweeps") else "model=tiny", *args, "logger=none", out=tmp_path, timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: bad {key}"), lines
    assert not any(tmp_path.rglob("run.json"))  # nothing ran


@pytest.mark.integration
def test_tiny_grpo_run_trains_only_the_unlearnable_prompts(tmp_path, harness_cache):
    from harness.data.tasks import build_task

    write_digits(tmp_path / "digits.jsonl", 8)
    task = build_task(compose("task=jsonl", f"task.path={tmp_path / 'digits.jsonl'}", "task.n_train=6",
                              "task.n_test=2").task)
    pick = {task.train[1].id, task.train[4].id}
    first_study(tmp_path / "first", [{e.id: "unlearnable" if e.id in pick else "easy" for e in task.train}])
    env = {**os.environ, "HARNESS_OUT": str(tmp_path / "out"), "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "harness.launch.run", "model=tiny", "logger=none", "eval.enabled=false",
                        "task=jsonl", "task.path=digits.jsonl", "task.n_train=6", "task.n_test=2", *warm_digits(8),
                        "objective=rlvr", "adapter=full", "objective.steps=2", "++objective.prompts_per_step=2",
                        "++objective.num_generations=4", "passrate.enabled=true", "passrate.k=2",
                        "passrate.splits=[train]", "passrate.grad_sim.enabled=false", "retrain.from=first",
                        "retrain.technique=plain", "name=rt"],
                       capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    (job,) = [p.parent for p in (tmp_path / "out" / "rt").rglob("run.json")]
    rec = json.loads((job / "run.json").read_text())
    assert rec["status"] == "done", (job / "error.txt").read_text() if (job / "error.txt").exists() else rec
    assert rec["retrain"]["kept"] == 2 and rec["retrain"]["classes"] == ["unlearnable"]
    prompts = pd.read_csv(job / "prompts.csv")
    assert set(prompts.prompt_id) == pick  # measured on exactly those
    ledger = pd.read_csv(job / "ledger.csv")
    assert set(ledger.prompt_id) <= pick and len(ledger)  # GRPO sampled only those


def test_retrain_arms_compose_into_the_study():
    """Each arm of the U4 study sets its technique label and the one setting it changes against plain's."""
    plain = compose("sweeps=unlearnable_retrain", "+retrain_arm=plain")
    assert plain.retrain.technique == "plain" and plain.adapter.name == "full" and plain.objective.name == "rlvr"
    assert plain.passrate.enabled and not plain.eval.enabled and plain.objective.steps == 20
    changed = {"more_rollouts": ("objective.num_generations", 16), "hot": ("objective.temperature", 1.3),
               "high_lr": ("objective.lr", 2e-5), "more_visits": ("objective.steps", 60)}
    arms = sorted(p.stem for p in (ROOT / "harness" / "conf" / "retrain_arm").glob("*.yaml"))
    assert arms == sorted([*changed, "plain"])
    for arm, (key, value) in changed.items():
        cfg = compose("sweeps=unlearnable_retrain", f"+retrain_arm={arm}")
        assert cfg.retrain.technique == arm and OmegaConf.select(cfg, key) == value
        assert OmegaConf.select(plain, key) != value
