"""Every study in sweeps/ composes (local and SLURM launchers) and runs one step on the tiny model."""

from __future__ import annotations

import json

import pytest

from tests.conftest import CONF, ROOT, run_cli

pytestmark = pytest.mark.integration  # real launches: see pyproject's marker

SWEEPS = sorted(p.stem for p in (ROOT / "harness" / "conf" / "sweeps").glob("*.yaml"))


def compose_hydra(*overrides: str):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


def test_expected_studies_exist():
    assert {"demo", "geometry", "unlearnability", "lora_rank", "sparse_masks", "kl_gate", "precision_gate"} <= set(
        SWEEPS)


@pytest.mark.parametrize("launcher,target", [("slurm", "SlurmLauncher"), ("local", "LocalLauncher"),
                                             ("submitit_local", "LocalLauncher")])
@pytest.mark.parametrize("sweep", SWEEPS)
def test_sweep_composes_with_launcher(sweep, launcher, target):
    cfg = compose_hydra(f"sweeps={sweep}", f"hydra/launcher={launcher}")
    assert cfg.name == sweep
    assert cfg.hydra.launcher._target_.endswith(target)
    params = cfg.hydra.sweeper.params
    assert params, f"sweeps/{sweep}.yaml defines no hydra.sweeper.params"
    if launcher == "slurm":
        assert cfg.hydra.launcher.gpus_per_node == 1 and cfg.hydra.launcher.partition


def first_job(sweep: str) -> list[str]:
    """Overrides that cut a study's sweep to its first job: each swept parameter to its first value."""
    params = compose_hydra(f"sweeps={sweep}").hydra.sweeper.params
    return [f"{key}={str(values).split(',')[0].strip()}" for key, values in params.items()]


def first_study_of(root, *task_overrides: str):
    """A first study for sweeps=unlearnable_retrain: one RL run whose prompts.csv calls two training prompts of the
    study task (at these sizes) unlearnable."""
    from harness.data.tasks import build_task
    from tests.conftest import compose

    task = build_task(compose("sweeps=unlearnable_retrain", *task_overrides).task)
    run = root / "run0"
    run.mkdir(parents=True)
    rows = ["prompt_id,split,class"] + [f"{e.id},train,{'unlearnable' if i < 2 else 'easy'}"
                                        for i, e in enumerate(task.train)]
    (run / "prompts.csv").write_text("\n".join(rows) + "\n")
    (run / "ledger.csv").write_text("step,prompt_id\n")
    return root


@pytest.mark.parametrize("sweep", SWEEPS)
def test_sweep_runs_one_step_on_tiny(sweep, tmp_path):
    """The study's own settings (tasks, eval sizes, hooks) for one step of its first job, at tiny sizes; the
    prompt filter is off (the tiny model never answers right, so it would keep no prompt)."""
    job = first_job(sweep)
    # a study that records trajectories fits its extrapolation on the first half: 2 steps, a snapshot each
    traj = compose_hydra(f"sweeps={sweep}", *job).trajectory.every > 0
    steps = ["objective.steps=2", "trajectory.every=1"] if traj else ["objective.steps=1"]
    if sweep == "unlearnable_retrain":  # U4 retrains a first study's unlearnable prompts: two of the 8 here
        job.append(f"retrain.from={first_study_of(tmp_path / 'first', 'task.n_train=8', 'task.n_test=8')}")
    r = run_cli("-m", f"sweeps={sweep}", *job, "model=tiny", "logger=none", *steps,
                "passrate.k=2", "eval.limit=4", "task.n_train=8", "task.n_test=8", "prompt_filter.enabled=false",
                out=tmp_path, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    runs = [json.loads(p.read_text()) for p in (tmp_path / sweep).glob("*/run.json")]
    assert len(runs) == 1 and runs[0]["status"] == "done", [x.get("reason") for x in runs]


def test_submitit_local_launcher_runs_two_jobs(tmp_path):
    r = run_cli("-m", "model=tiny", "logger=none", "objective.steps=1", "adapter=full,lora", "name=sl",
                "eval.enabled=false", "hydra/launcher=submitit_local", out=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    runs = [json.loads(p.read_text()) for p in (tmp_path / "sl").glob("*/run.json")]
    assert len(runs) == 2 and all(x["status"] == "done" for x in runs)
    assert {x["adapter"] for x in runs} == {"full", "lora"}


GROUP_FILES = [(g, p.stem) for g in ("eval", "claims_arm", "hydra/launcher")
               for p in sorted((ROOT / "harness" / "conf" / g).glob("*.yaml"))]


@pytest.mark.parametrize("group,name", GROUP_FILES)
def test_every_file_of_the_other_groups_composes_and_validates(group, name):
    """eval/*, claims_arm/* and hydra/launcher/* (the groups not trained by another test) compose into a
    config that the launch-time validation accepts."""
    from harness.launch.validate import check_launch

    override = f"+claims_arm={name}" if group == "claims_arm" else f"{group}={name}"
    extra = ["sweeps=claims"] if group == "claims_arm" else []
    assert check_launch(["model=tiny", *extra, override], False, CONF) == []
