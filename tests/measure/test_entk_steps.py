"""The eNTK along the update path (``entk_steps.json``, claim E1.B) on a hand-built trajectory of the tiny model:
a step that does not move leaves the Gram unchanged (angle 0, update size 0), and a step that does gives the
angle between the base's Gram and that of W0 + ΔW built independently, at the update size ‖ΔW‖/‖W0‖."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import save_file

from harness.data.models import load_model
from harness.data.tasks import build_task
from harness.launch.validate import check
from harness.measure.entk import compare_grams, entk_gram
from harness.measure.entk_steps import entk_steps_for_run
from tests.conftest import compose, write_digits


def test_entk_at_every_snapshot_by_hand(tmp_path, tiny_base):
    write_digits(tmp_path / "digits.jsonl", 16)
    cfg = compose("model=tiny", "task=jsonl", f"task.path={tmp_path / 'digits.jsonl'}", "task.n_train=8",
                  "task.n_test=6", "entk.n_probe=6", "entk.k=3")
    task = build_task(cfg.task)
    base, tok = load_model(tiny_base)
    names = ["model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight"]
    gen = torch.Generator().manual_seed(0)
    delta = {n: 0.05 * torch.randn(base.get_parameter(n).shape, generator=gen) for n in names}
    zero = {n: torch.zeros_like(d) for n, d in delta.items()}
    traj = tmp_path / "job" / "trajectory"
    traj.mkdir(parents=True)
    for step, d in ((0, zero), (1, zero), (2, delta)):
        save_file(d, str(traj / f"step_{step}.safetensors"))
    (traj / "meta.json").write_text(json.dumps({"kind": "full"}))

    out = entk_steps_for_run(cfg, tmp_path / "job", base, tok, task, tiny_base)
    still, moved = out["intervals"]
    assert out["steps"] == [0, 1, 2] and out["n_probe"] == 6
    assert still["rel_step"] == 0 and still["entk_mean_angle_deg"] == pytest.approx(0, abs=1e-4)
    assert still["angle_per_rel"] is None
    # independently: the Gram of W0 + ΔW, against the base's
    w0 = math.sqrt(sum(float(p.double().pow(2).sum()) for n, p in base.named_parameters()
                       if n in names))
    assert moved["rel_step"] == pytest.approx(math.sqrt(sum(float(d.double().pow(2).sum()) for d in delta.values())) / w0)
    tuned, _ = load_model(tiny_base)
    with torch.no_grad():
        for n, d in delta.items():
            tuned.get_parameter(n).add_(d)
    want = compare_grams(entk_gram(base, tok, task.test[:6]), entk_gram(tuned, tok, task.test[:6]), 3)
    assert moved["entk_mean_angle_deg"] == pytest.approx(want["entk_mean_angle_deg"], rel=1e-6, abs=1e-6)
    assert moved["entk_mean_angle_deg"] > 0
    assert json.loads((tmp_path / "job" / "entk_steps.json").read_text())["intervals"][1]["to"] == 2


def test_a_sketched_trajectory_is_skipped_in_the_artifact(tmp_path, tiny_base):
    cfg = compose("model=tiny")
    (tmp_path / "trajectory").mkdir()
    (tmp_path / "trajectory" / "meta.json").write_text(json.dumps({"kind": "sketch"}))
    base, tok = load_model(tiny_base)
    out = entk_steps_for_run(cfg, tmp_path, base, tok, None, tiny_base)
    assert "full snapshots" in out["skipped"]


def test_entk_with_sketched_snapshots_is_refused_before_launch():
    (line,) = check(compose("model=tiny", "trajectory.every=1", "trajectory.sketch=true", "trajectory.entk=true"))
    assert line.startswith("error: bad trajectory.entk True; valid: false unless trajectory.sketch is false or auto")
