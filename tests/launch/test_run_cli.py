"""The Hydra entry point as a user runs it: multirun, resume-by-skipping, bad input, failed runs."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.integration  # real launches: see pyproject's marker

TINY = ["model=tiny", "logger=none", "name=t"]


def runs(out):
    return {p.parent.name: json.loads(p.read_text()) for p in (out / "t").glob("*/run.json")}


def test_multirun_completes_then_skips(tmp_path):
    r = run_cli("-m", *TINY, "objective.steps=2", "adapter=full,lora", out=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    done = runs(tmp_path)
    # readable multirun subdirectories: the overrides that differ, logger/name excluded
    assert sorted(done) == ["adapter=full,model=tiny,objective.steps=2", "adapter=lora,model=tiny,objective.steps=2"]
    for d in done.values():
        assert d["status"] == "done"
        assert d["timings"]["train"] > 0
    assert (tmp_path / "t" / "adapter=lora,model=tiny,objective.steps=2" / "delta.safetensors").exists()
    assert "total wall time" in r.stdout
    stamp = {k: v["finished"] for k, v in done.items()}
    r2 = run_cli("-m", *TINY, "objective.steps=2", "adapter=full,lora", out=tmp_path)
    assert r2.returncode == 0, r2.stderr[-2000:]
    assert r2.stdout.count("already done") == 2
    assert {k: v["finished"] for k, v in runs(tmp_path).items()} == stamp
    # A done run whose settings are not the launch's (an adapter YAML edited since: here its stored record says
    # so) is not taken as done: it retrains, and the line names the keys that changed.
    lora = tmp_path / "t" / "adapter=lora,model=tiny,objective.steps=2" / "run.json"
    rec = json.loads(lora.read_text())
    rec["settings"]["adapter"]["r"] = 64
    lora.write_text(json.dumps(rec))
    r3 = run_cli("-m", *TINY, "objective.steps=2", "adapter=full,lora", out=tmp_path)
    assert r3.returncode == 0, r3.stderr[-2000:]
    assert r3.stdout.count("already done") == 1
    assert "rerun adapter=lora,model=tiny,objective.steps=2: done with other settings (adapter.r)" in r3.stdout
    again = runs(tmp_path)["adapter=lora,model=tiny,objective.steps=2"]
    assert again["status"] == "done" and again["finished"] != stamp["adapter=lora,model=tiny,objective.steps=2"]
    assert again["settings"]["adapter"]["r"] == 8


@pytest.mark.parametrize("arg,group", [("adapter=nope", "adapter"), ("objective=ppo", "objective"),
                                       ("task=gsm9k", "task"), ("model=gpt5", "model"),
                                       ("adapter=lora,nope", "adapter"),
                                       # a group no hand-kept list names: every folder of the config tree
                                       ("+claims_arm=ful", "claims_arm")])
def test_bad_names_exit_2(arg, group, tmp_path):
    r = run_cli(arg, out=tmp_path)
    assert r.returncode == 2
    line = r.stderr.strip().splitlines()[-1]
    assert f"unknown {group}" in line and "valid:" in line
    if group == "adapter":
        assert "lora" in line and "milora" in line
    assert not any(tmp_path.rglob("run.json"))  # nothing ran, nothing marked done


def test_nonfinite_loss_marks_failed_and_sweep_goes_on(tmp_path):
    # An absurd learning rate for one job makes the loss non-finite within 3 steps; the other job runs on.
    r = run_cli("-m", *TINY, "adapter=full", "objective.steps=3", "objective.lr=1e30,1e-4", out=tmp_path)
    # the sweep went on past the failed job, then exits non-zero naming it (harness.launch.callbacks)
    assert r.returncode == 1, r.stderr[-2000:]
    assert "1 of 2 runs not done" in r.stderr and "non-finite" in r.stderr.strip().splitlines()[-1]
    got = runs(tmp_path)
    bad = got["adapter=full,model=tiny,objective.lr=1e+30,objective.steps=3"]
    good = got["adapter=full,model=tiny,objective.lr=0.0001,objective.steps=3"]
    assert bad["status"] == "failed" and "non-finite" in bad["reason"]
    assert good["status"] == "done"


FAST = ["eval.enabled=false", "entk.enabled=false", "report.on_sweep_end=false"]


def test_single_run_that_fails_exits_nonzero(tmp_path):
    r = run_cli(*TINY, *FAST, "adapter=full", "objective.steps=3", "objective.lr=1e30", out=tmp_path)
    assert r.returncode == 1, r.stderr[-2000:]
    assert "run failed" in r.stderr and "non-finite" in r.stderr.strip().splitlines()[-1]
    (record,) = [json.loads(p.read_text()) for p in tmp_path.rglob("run.json")]
    assert record["status"] == "failed" and "non-finite" in record["reason"]


def test_wandb_start_failure_is_recorded_and_the_sweep_goes_on(tmp_path):
    # A real W&B failure: wandb.init raises UsageError on a run id with '/' (set through the environment, as a
    # user's leftover WANDB_RUN_ID would be). The first job warns, records it and trains without W&B; the sweep
    # goes on (here W&B drops the bad id after that failure, so the second job logs as usual).
    args = ["-m", "model=tiny", "logger=wandb", "name=t", *FAST, "objective.steps=1", "adapter=full,lora"]
    r = run_cli(*args, out=tmp_path, WANDB_RUN_ID="bad/id", WANDB_MODE="offline")
    assert r.returncode == 0, r.stderr[-3000:]
    got = {rec["adapter"]: rec for rec in runs(tmp_path).values()}
    assert got["full"]["status"] == "done" and got["lora"]["status"] == "done"
    assert got["full"]["wandb"]["status"] == "failed to start" and "UsageError" in got["full"]["wandb"]["reason"]
    assert got["lora"]["wandb"]["status"] in ("started", "failed to start")
    failed = sum(rec["wandb"]["status"] == "failed to start" for rec in got.values())
    assert r.stderr.count("warning: W&B did not start") == failed


def test_run_objectives_skips_grid_cells_and_the_sweep_is_clean(tmp_path):
    """A study arm that only makes sense under RLVR skips its SFT cell: no training, status skipped, exit 0, and
    the sweep's table and report leave it out."""
    r = run_cli("-m", *TINY, "objective.steps=1", "objective=sft,rlvr", "run_objectives=[rlvr]",
                "entk.enabled=false", "eval.enabled=false", out=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    status = {k: v["status"] for k, v in runs(tmp_path).items()}
    assert sorted(status.values()) == ["done", "skipped"], status
    skipped = next(k for k, v in status.items() if v == "skipped")
    assert "objective=sft" in skipped and not (tmp_path / "t" / skipped / "delta.safetensors").exists()
    from harness.analysis.sweep import load_sweep

    sweep = load_sweep(tmp_path / "t")
    assert sweep.skipped == [skipped] and list(sweep.table["objective"]) == ["rlvr"]
    assert "1 grid cells skipped" in (tmp_path / "t" / "report.md").read_text()
