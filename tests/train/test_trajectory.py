"""Recording update trajectories: the callback on the real tiny model driven by the trainer's own state object with
hand-set weights (PULSE shares known by construction, snapshots equal to W_t − W0), the automatic sketch, the checks
before launch, and a real few-step run through the CLI whose last snapshot is its delta.safetensors."""

from __future__ import annotations

import json
import re

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file
from transformers import TrainerState

from harness.analysis.trajectory import (
    extrapolation_error,
    extrapolation_weights,
    r2_linear,
    r2_rank1,
    snapshot_gram,
)
from harness.data.models import load_model
from harness.launch.validate import check_launch
from harness.train.adapters import analyzed_weights, build_adapter
from harness.train.adapters.base import clone_state
from harness.train.trajectory import TrajectoryCallback, omega, sketch, snapshot_steps
from tests.conftest import CONF, ROOT, compose, run_cli, write_digits

SMALL, LARGE = 2.0**-10, 2.0**-6  # at 1.0 bf16's spacing is 2^-7: 1 + 2^-10 rounds back to 1, 1 + 2^-6 is exact


def full_model(tiny_base):
    """(adapter, model, names) of full fine-tuning on the tiny model with every analyzed weight set to 1.0."""
    model, _ = load_model(tiny_base)
    names = analyzed_weights(model.state_dict())
    with torch.no_grad():
        for n in names:
            model.get_parameter(n).fill_(1.0)
    adapter = build_adapter(compose("model=tiny", "adapter=full").adapter, seed=0)
    return adapter, adapter.prepare(model), names


def callback(tmp_path, adapter, model, names, **kw):
    settings = dict(every=1, dtypes=["float32", "bfloat16"], sketch=False, sketch_dim=4, sketch_seed=0,
                    max_full_gb=2.0) | kw
    return TrajectoryCallback(tmp_path / "trajectory", adapter, clone_state(model, names), names, **settings)


def test_snapshot_steps():
    assert snapshot_steps(10, 4) == [0, 4, 8, 10]
    assert snapshot_steps(4, 2) == [0, 2, 4]
    assert snapshot_steps(3, 5) == [0, 3]


def test_pulse_share_and_snapshots_by_hand(tmp_path, tiny_base):
    """Step 1 adds 2^-10 to the first quarter of every matrix's entries (changed in fp32, not in bf16) and 2^-6 to
    the second quarter (changed in both): fp32 share 1/2, bf16 share 1/4. Step 2 changes nothing: 0 and 0. The
    snapshots are ΔW_t = W_t − W0 exactly."""
    adapter, model, names = full_model(tiny_base)
    cb = callback(tmp_path, adapter, model, names)
    state = TrainerState(max_steps=2)
    cb.on_train_begin(None, state, None, model=model)
    with torch.no_grad():
        for n in names:
            flat = model.get_parameter(n).view(-1)
            q = flat.numel() // 4
            flat[:q] += SMALL
            flat[q : 2 * q] += LARGE
    for step in (1, 2):
        state.global_step = step
        cb.on_step_end(None, state, None, model=model)
    cb.on_train_end(None, state, None, model=model)
    traj = tmp_path / "trajectory"
    rows = [json.loads(x) for x in (traj / "sparsity.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert rows[0]["float32"]["changed"] == 0.5 and rows[0]["bfloat16"]["changed"] == 0.25
    assert set(rows[0]["bfloat16"]["per_matrix"].values()) == {0.25} and len(rows[0]["bfloat16"]["per_matrix"]) == 14
    assert rows[1]["float32"]["changed"] == 0.0 and rows[1]["bfloat16"]["changed"] == 0.0
    assert sorted(p.name for p in traj.glob("step_*")) == ["step_0.safetensors", "step_1.safetensors",
                                                           "step_2.safetensors"]
    s0, s1, s2 = (load_file(str(traj / f"step_{t}.safetensors")) for t in (0, 1, 2))
    for n in names:
        assert float(s0[n].abs().max()) == 0.0
        q = s1[n].numel() // 4
        expect = torch.zeros(s1[n].numel())
        expect[:q], expect[q : 2 * q] = SMALL, LARGE
        torch.testing.assert_close(s1[n].view(-1), expect, rtol=0, atol=0)
        torch.testing.assert_close(s2[n], s1[n], rtol=0, atol=0)
    meta = json.loads((traj / "meta.json").read_text())
    assert meta["kind"] == "full" and meta["steps_recorded"] == [0, 1, 2]
    assert all(s["bytes"] > 4 * meta["entries"] for s in meta["snapshots"])  # the fp32 payload and a header


def test_auto_sketch_above_the_bound(tmp_path, tiny_base):
    """``sketch: auto`` with a bound below the run's snapshots stores ΔW·Ω: m × sketch_dim per matrix."""
    adapter, model, names = full_model(tiny_base)
    cb = callback(tmp_path, adapter, model, names, every=2, sketch="auto", max_full_gb=1e-9)
    state = TrainerState(max_steps=2)
    cb.on_train_begin(None, state, None, model=model)
    shapes = {n: model.get_parameter(n).shape for n in names}
    snap = load_file(str(tmp_path / "trajectory" / "step_0.safetensors"))
    assert {n: tuple(v.shape) for n, v in snap.items()} == {n: (s[0], 4) for n, s in shapes.items()}
    assert json.loads((tmp_path / "trajectory" / "meta.json").read_text())["kind"] == "sketch"


def test_sketch_preserves_exact_linearity():
    """ΔW_t = t·D (any D): the sketch ΔW_t·Ω is t·(DΩ), so both R² are 1 and the extrapolation exact; and for a
    non-linear path the sketch of the extrapolation is the extrapolation of the sketches (one linear map)."""
    gen = torch.Generator().manual_seed(1)
    d, e = torch.randn(16, 40, generator=gen), torch.randn(16, 40, generator=gen)
    steps = [0, 2, 4, 6, 8]
    lin = [sketch({"w": t * d}, dim=8, seed=3)["w"] for t in steps]
    g = snapshot_gram(torch.stack(lin))
    assert r2_rank1(g) == pytest.approx(1.0, abs=1e-6) and r2_linear(g, steps) == pytest.approx(1.0, abs=1e-6)
    w = extrapolation_weights(steps, 0.5)
    assert extrapolation_error(g, w) == pytest.approx(0.0, abs=1e-6)
    curved = [t * d + t**2 * e for t in steps]
    ex_then_sketch = sketch({"w": sum(float(wi) * x for wi, x in zip(w, curved))}, dim=8, seed=3)["w"]
    sketch_then_ex = sum(float(wi) * sketch({"w": x}, dim=8, seed=3)["w"] for wi, x in zip(w, curved))
    torch.testing.assert_close(ex_then_sketch, sketch_then_ex, rtol=1e-5, atol=1e-4)


def test_sketch_keeps_squared_norms_on_average():
    """E‖XΩ‖² = ‖X‖² (E[ΩΩᵀ] = I): over 400 seeds the mean ratio for a rank-1 X (the worst case, relative sd
    √(2/dim) = 0.25 per seed at dim 32) is 1 within 4 standard errors (4·0.25/√400 = 0.05)."""
    x = torch.outer(torch.arange(1.0, 7.0), torch.linspace(-1, 1, 50))
    ratios = torch.tensor([float((x.double() @ omega(50, 32, s)).pow(2).sum() / x.double().pow(2).sum())
                           for s in range(400)])
    assert float(ratios.mean()) == pytest.approx(1.0, abs=0.05)
    assert 0.1 < float(ratios.std()) < 0.4  # the spread the docstring states, √(2/32) = 0.25


@pytest.mark.parametrize("override,needle", [
    ("trajectory.every=-1", "trajectory.every -1"),
    ("trajectory.sketch=maybe", "trajectory.sketch 'maybe'"),
    ("trajectory.fit_fraction=1.0", "trajectory.fit_fraction 1.0"),
    ("trajectory.sketch_dim=0", "trajectory.sketch_dim 0"),
    ("trajectory.entk=yes", "trajectory.entk 'yes'"),
    # 10 steps, a snapshot every 10: none in the first half to fit the extrapolation on
    ("trajectory.every=10", "trajectory.every 10"),
])
def test_bad_settings_are_refused_before_launch(override, needle):
    errs = check_launch(["model=tiny", "objective.steps=10", override], False, CONF)
    assert any(needle in e for e in errs), errs


def test_sharded_training_is_refused_before_launch():
    errs = check_launch(["model=tiny", "trajectory.every=1", "dist.fsdp=true"], False, CONF)
    assert any("trajectory.every 1" in e and "dist.fsdp" in e for e in errs), errs


@pytest.mark.integration
def test_cli_run_records_the_trajectory(tmp_path):
    """Three LoRA SFT steps with trajectory.every=1 beside the same run with trajectories off: the first writes a
    snapshot per step whose last is delta.safetensors, one PULSE line per step, the summary, the PNG, and the
    extrapolated model's accuracy on the run's eval prompts, paired with the trained model's; the second writes
    nothing of it and has no trajectory stage."""
    write_digits(tmp_path / "digits.jsonl", 16)
    r = run_cli("-m", "model=tiny", "logger=none", "name=tr", "eval.max_gen_toks=4", "entk.enabled=false",
                "report.on_sweep_end=false", "task=jsonl", f"task.path={tmp_path / 'digits.jsonl'}",
                "task.n_train=8", "task.n_test=4", "adapter=lora", "objective.steps=3", "++objective.lr=0.01",
                "trajectory.every=0,1", "trajectory.eval_extrapolated=true", "trajectory.entk=true",
                out=tmp_path / "out", PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    assert r.returncode == 0, r.stderr[-3000:]
    jobs = {OmegaConf.load(p.parent / ".hydra" / "config.yaml").trajectory.every: p.parent
            for p in (tmp_path / "out" / "tr").glob("*/run.json")}
    on, off = jobs[1], jobs[0]
    assert not (off / "trajectory").exists() and not (off / "trajectory_summary.json").exists()
    assert "trajectory" not in json.loads((off / "run.json").read_text())["timings"]
    traj = on / "trajectory"
    assert sorted(p.name for p in traj.glob("step_*")) == [f"step_{t}.safetensors" for t in range(4)]
    last, delta = load_file(str(traj / "step_3.safetensors")), load_file(str(on / "delta.safetensors"))
    assert set(last) == set(delta)
    for n in delta:
        torch.testing.assert_close(last[n], delta[n], rtol=0, atol=0)
    assert max(float(v.abs().max()) for v in delta.values()) > 0  # the run moved
    rows = [json.loads(x) for x in (traj / "sparsity.jsonl").read_text().splitlines()]
    assert [x["step"] for x in rows] == [1, 2, 3] and all(0 < x["bfloat16"]["changed"] <= 1 for x in rows)
    summary = json.loads((on / "trajectory_summary.json").read_text())
    assert summary["steps"] == [0, 1, 2, 3] and summary["fit_steps"] == [1] and summary["kind"] == "full"
    assert summary["storage_bytes"] == sum(p.stat().st_size for p in traj.glob("step_*"))
    assert 0 < summary["whole"]["r2_rank1"] <= 1 + 1e-12
    assert (on / "trajectory.png").stat().st_size > 0 and (traj / "extrapolated.safetensors").exists()
    rec = json.loads((on / "run.json").read_text())
    assert rec["status"] == "done" and rec["trajectory"]["snapshots"] == 4 and "trajectory" in rec["timings"]
    assert (traj / "meta.json").stat().st_size > 0
    ev, trained = (json.loads((on / f).read_text())["tasks"]["id"] for f in ("trajectory_eval.json", "eval.json"))
    assert ev["accuracy_trained"] == trained["accuracy"] and set(ev["scores"]) == set(trained["scores"])
    assert ev["accuracy_extrapolated"] == pytest.approx(sum(ev["scores"].values()) / len(ev["scores"]))
    assert not (off / "trajectory_eval.json").exists()
    # the eNTK at every snapshot (E1.B): one interval per step, each with its update size
    steps = json.loads((on / "entk_steps.json").read_text())
    assert steps["steps"] == [0, 1, 2, 3] and [(i["from"], i["to"]) for i in steps["intervals"]] == [(0, 1), (1, 2), (2, 3)]
    assert all(i["rel_step"] > 0 and 0 <= i["entk_mean_angle_deg"] <= 90 for i in steps["intervals"])
    assert "trajectory_entk" in rec["timings"] and not (off / "entk_steps.json").exists()


def test_bench_prints_costs_as_ratios_to_a_step(tiny_base, capsys):
    """``harness bench trajectory`` on the tiny model: the PULSE figure and both snapshot kinds as ratios to an
    optimizer step; a full snapshot holds 4 bytes per analyzed entry (73,728 on the tiny model) plus a header."""
    from harness.launch import bench

    bench.main(["trajectory", f"model={tiny_base}", "repeats=1"])
    out = capsys.readouterr().out
    assert "73,728 entries" in out and "PULSE figure" in out
    full = re.search(r"snapshot, full .* ratio to a step (\S+) +(\S+) MB", out)
    assert full and float(full.group(1)) > 0 and 0.2949 <= float(full.group(2)) <= 0.31
    assert re.search(r"snapshot, sketch .* ratio to a step \S+ +\S+ MB", out)


def test_a_rerun_starts_a_fresh_trajectory(tmp_path, tiny_base):
    """Snapshots of an earlier run in the same job dir (here step 7) are gone when the recorder starts again."""
    adapter, model, names = full_model(tiny_base)
    (tmp_path / "trajectory").mkdir()
    (tmp_path / "trajectory" / "step_7.safetensors").write_bytes(b"old")
    callback(tmp_path, adapter, model, names).on_train_begin(None, TrainerState(max_steps=2), None, model=model)
    assert sorted(p.name for p in (tmp_path / "trajectory").glob("step_*")) == ["step_0.safetensors"]
