"""Start pass rates are cached per (base weights, settings, seed), not per base path: a checkpoint retrained at
the same path is measured again (a regression test: keyed by the path, the second measurement silently reused
the first model's values); with ``passrate.start_seeded`` each run seed gets its own start."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from harness.measure.passrate import _examples, _sample_entries, _settings, start_passrates
from tests.conftest import compose


@pytest.fixture
def setup(tmp_path, tiny_base):
    data = tmp_path / "digits.jsonl"
    with data.open("w") as fh:
        for i in range(6):
            fh.write(json.dumps({"prompt": f"Say the digit {(3 * i) % 10} ({i})", "answer": str((3 * i) % 10)}) + "\n")
    base = tmp_path / "ckpt"
    shutil.copytree(tiny_base, base)

    def cfg(*extra: str):
        return compose("model=tiny", "task=jsonl", f"task.path={data}", "task.n_train=4", "task.n_test=2",
                       "passrate.enabled=true", "passrate.k=4", "passrate.max_new_tokens=4", *extra)

    return cfg, base


def _retrain_in_place(base) -> None:
    """Overwrite the checkpoint at ``base`` with other weights (what retraining to the same path does)."""
    from harness.data.models import load_model

    model, tok = load_model(base)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=g))
    model.save_pretrained(base)


def test_start_cache_keyed_by_weights_not_path(setup):
    from harness.data.models import load_model
    from harness.data.tasks import build_task

    cfg_of, base = setup
    cfg = cfg_of()
    task = build_task(cfg.task)
    first, spent = start_passrates(cfg, task, base)
    assert spent > 0
    again, spent = start_passrates(cfg, task, base)
    assert spent == 0 and again == first  # the same weights: from the cache

    _retrain_in_place(base)
    second, spent = start_passrates(cfg, task, base)
    assert second["key"] != first["key"] and spent > 0  # keyed by the path, this came back stale from the cache
    model, tok = load_model(base)
    s = _settings(cfg)
    fresh = _sample_entries(model.eval(), tok, task, _examples(task, s["splits"]), s, "")
    assert {p: e["pass"] for p, e in second["prompts"].items()} == {p: e["pass"] for p, e in fresh.items()}


def test_start_seeded_one_start_per_seed(setup):
    from harness.core.store import base_key
    from harness.measure.passrate import start_settings

    cfg_of, base = setup

    def key(*extra):
        return base_key(base, start_settings(cfg_of(*extra)))

    # default: one start for every run seed (passrate.seed)
    assert key("seed=0") == key("seed=1")
    assert key("seed=0", "passrate.seed=0") != key("seed=0", "passrate.seed=3")
    # seeded: the run's seed draws the samples, one cache entry per seed
    assert key("seed=0", "passrate.start_seeded=true") != key("seed=1", "passrate.start_seeded=true")
    assert _settings(cfg_of("seed=5", "passrate.start_seeded=true"))["seed"] == 5
    assert _settings(cfg_of("seed=5"))["seed"] == 0


def test_grad_sim_at_is_checked(setup):
    from harness.measure.passrate import _grad_settings

    cfg_of, _ = setup
    assert _grad_settings(cfg_of())["at"] == "base"
    assert _grad_settings(cfg_of("passrate.grad_sim.at=end"))["at"] == "end"
    with pytest.raises(ValueError, match="grad_sim.at"):
        _grad_settings(cfg_of("passrate.grad_sim.at=middle"))


def test_gradient_taken_at_the_chosen_weights(setup, tmp_path):
    """``at=base`` differentiates at the base checkpoint, ``at=end`` at the run's merged model, both on the
    correct rollouts the run kept; left-out prompts are counted by reason."""
    import csv

    import numpy as np

    from harness.data.models import load_model
    from harness.data.tasks import build_task
    from harness.measure.ledger import read_correct_rollouts
    from harness.measure.passrate import _grad_settings, gradient_sketches, passrates_for_run

    cfg_of, base = setup
    task = build_task(cfg_of().task)
    base_model, tok = load_model(base)
    end_model, _ = load_model(base)
    with torch.no_grad():
        for p in end_model.parameters():
            p.mul_(1.1)
    a, b, c, d = (e.id for e in task.train)
    gold = {e.id: e.answer for e in task.train}
    for at in ("base", "end"):
        job = tmp_path / at
        job.mkdir()
        with (job / "ledger.csv").open("w", newline="") as fh:  # a: 2 correct, b: 1, c: sampled never correct, d: never
            csv.writer(fh).writerows([["step", "prompt_id", "rollouts", "correct"], [0, a, 4, 2], [0, b, 4, 1],
                                      [1, c, 4, 0]])
        with (job / "correct_rollouts.jsonl").open("w") as fh:
            for pid, n in ((a, 2), (b, 1)):
                for _ in range(n):
                    ids = tok(f" {gold[pid]}", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
                    fh.write(json.dumps({"prompt_id": pid, "step": 0, "ids": ids, "text": f" {gold[pid]}"}) + "\n")
        cfg = cfg_of(f"passrate.grad_sim.at={at}", "passrate.grad_sim.dim=256", "objective=rlvr")
        passrates_for_run(cfg, job, end_model, tok, task, base)
        z = np.load(job / "grad_sketch.npz")
        assert [str(i) for i in z["ids"]] == sorted([a, b]) and str(z["at"]) == at
        info = json.loads((job / "passrate.json").read_text())["grad_sim"]
        assert info["left_out"] == {"not_sampled": 1, "no_correct_rollout": 1, "correct_not_kept": 0}
        model = base_model if at == "base" else end_model
        expected = gradient_sketches(model, tok, read_correct_rollouts(job / "correct_rollouts.jsonl"),
                                     {e.id: e.prompt for e in task.train}, _grad_settings(cfg))
        assert np.allclose(z["sketch"], np.stack([expected[p][0] for p in sorted(expected)]), atol=1e-6)
    za, zb = np.load(tmp_path / "base" / "grad_sketch.npz"), np.load(tmp_path / "end" / "grad_sketch.npz")
    assert not np.allclose(za["sketch"], zb["sketch"])
