"""pass@k: the unbiased estimator against brute-force enumeration of k-subsets, its edge values, the crossover k,
and a real 1-step tiny-model sweep (2 seeds) that writes passk.json and kl.json, reuses the base's samples, and
renders the report sections (table and PNG)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from fractions import Fraction
from math import comb

import numpy as np
import pytest

from harness.measure.passk import ALL, crossover_k, group_curves, mean_curve, pass_at_k, pass_at_k_curve
from tests.conftest import ROOT, warm_digits, write_digits


def brute_force(n: int, c: int, k: int) -> float:
    """Share of the k-subsets of n samples (the first c correct) that hold at least one correct sample."""
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(i < c for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 8))
def test_matches_enumeration_of_subsets(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_force(n, c, k), abs=1e-12), (n, c, k)


def test_edge_values():
    for n in (1, 5, 16, 64):
        assert all(pass_at_k(n, n, k) == 1.0 for k in range(1, n + 1))
        assert all(pass_at_k(n, 0, k) == 0.0 for k in range(1, n + 1))
        for c in range(n + 1):
            assert pass_at_k(n, c, 1) == pytest.approx(c / n, abs=1e-12)


def test_stable_for_large_n():
    """n = 500 (C(500, 250) ~ 1e149): the product form agrees with the exact rational 1 - C(n-c,k)/C(n,k)."""
    for n, c, k in ((500, 3, 250), (500, 1, 1), (500, 499, 2), (300, 10, 200)):
        exact = 1 - Fraction(comb(n - c, k), comb(n, k))
        assert pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-10, abs=1e-14)


def test_curve_is_monotone_and_bad_input_refused():
    curve = pass_at_k_curve(16, 3)
    assert curve.shape == (16,) and np.all(np.diff(curve) >= 0) and curve[0] == pytest.approx(3 / 16)
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)
    with pytest.raises(ValueError):
        mean_curve([(4, 1), (8, 1)])


def test_crossover_k():
    # run ahead at k = 1, 2; tie at 3 counts (base >= run)
    assert crossover_k([0.1, 0.3, 0.5, 0.9], [0.4, 0.45, 0.5, 0.6]) == 3
    assert crossover_k([0.1, 0.2], [0.3, 0.4]) is None  # the run stays ahead
    assert crossover_k([0.5, 0.6], [0.4, 0.7]) == 1  # not ahead even at k = 1
    # the base catching up exactly at 1.0 up to rounding
    assert crossover_k([0.5, 1.0 - 1e-15], [0.9, 1.0]) == 2


def test_group_curves_by_hand():
    """Group a: the run solves 4/4 where the base solves 1/4; group b: the run 0/4, the base 2/4. pass@k for
    n = 4: c = 1 -> k/4; c = 2 -> 1 - C(2,k)/C(4,k) = 1/2, 5/6, 1, 1."""
    prompts = [{"group": "a", "c_base": 1, "c_run": 4}, {"group": "b", "c_base": 2, "c_run": 0}]
    out = group_curves(prompts, 4)
    assert list(out) == [ALL, "a", "b"]
    np.testing.assert_allclose(out["a"]["base"], [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(out["a"]["run"], [1, 1, 1, 1])
    assert out["a"]["crossover_k"] == 4  # the base catches up (1.0 = 1.0) at k = n
    np.testing.assert_allclose(out["b"]["base"], [0.5, 5 / 6, 1, 1])
    assert out["b"]["crossover_k"] == 1
    np.testing.assert_allclose(out[ALL]["base"], [0.375, (0.5 + 5 / 6) / 2, 0.875, 1.0])
    np.testing.assert_allclose(out[ALL]["run"], [0.5, 0.5, 0.5, 0.5])
    assert out[ALL]["crossover_k"] == 2 and out[ALL]["run_pass1"] == 0.5 and out[ALL]["base_passn"] == 1.0


# --- the run hook on the tiny model ------------------------------------------------------------------------

N, PROMPTS, KL_SAMPLES = 8, 3, 2


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, harness_cache):
    """One SFT step per seed on a single-digit task the warmed tiny model often answers, pass@k and KL on:
    (sweep dir, job dirs, the base caches the sweep added per kind: the session's cache holds other tests' too)."""
    work = tmp_path_factory.mktemp("passk_run")
    before = {kind: set((harness_cache / kind).glob("*.json")) for kind in ("passk", "kl-samples")}
    write_digits(work / "digits.jsonl", 8)
    env = {**os.environ, "HARNESS_OUT": str(work / "out"), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "harness.launch.run", "-m", "model=tiny", "logger=none", "eval.enabled=false",
                        "entk.enabled=false", "report.on_sweep_end=false", "task=jsonl", "task.path=digits.jsonl",
                        "task.n_train=4", "task.n_test=4", *warm_digits(8), "objective=sft", "objective.steps=1", "seed=0,1",
                        "++objective.lr=0.05", "passk.enabled=true", f"passk.n={N}", f"passk.n_prompts={PROMPTS}",
                        "passk.max_new_tokens=4", "kl.enabled=true", f"kl.n_prompts={PROMPTS}",
                        f"kl.samples={KL_SAMPLES}", "kl.max_new_tokens=6", "kl.batch_size=4", "name=pk"],
                       capture_output=True, text=True, timeout=600, env=env, cwd=work)
    assert r.returncode == 0, r.stderr[-3000:]
    jobs = sorted(p.parent for p in (work / "out" / "pk").glob("*/run.json"))
    assert len(jobs) == 2
    for j in jobs:
        assert json.loads((j / "run.json").read_text())["status"] == "done", (j / "error.txt").read_text()
    added = {kind: set((harness_cache / kind).glob("*.json")) - old for kind, old in before.items()}
    return work / "out" / "pk", jobs, added


@pytest.mark.integration
def test_run_writes_passk_json(sweep):
    _, jobs, added = sweep
    docs = [json.loads((j / "passk.json").read_text()) for j in jobs]
    for d in docs:
        assert d["k"] == list(range(1, N + 1)) and len(d["prompts"]) == PROMPTS
        assert all(0 <= p["c_base"] <= N and 0 <= p["c_run"] <= N for p in d["prompts"])
        g = d["groups"][ALL]
        # the stored curves are the estimator applied to the stored counts
        np.testing.assert_allclose(g["run"], mean_curve((N, p["c_run"]) for p in d["prompts"]))
        assert d["pass1_run"] == pytest.approx(np.mean([p["c_run"] for p in d["prompts"]]) / N)
        assert d["passn_base"] == pytest.approx(np.mean([p["c_base"] > 0 for p in d["prompts"]]))
        assert d["crossover_k"] == crossover_k(g["base"], g["run"])
        assert "passk" in json.loads((jobs[0] / "run.json").read_text())["timings"]
    # the base was sampled once: both seeds read the same cached counts
    assert docs[0]["base_key"] == docs[1]["base_key"]
    assert [p["c_base"] for p in docs[0]["prompts"]] == [p["c_base"] for p in docs[1]["prompts"]]
    assert len(added["passk"]) == 1
    assert sum(p["c_base"] for p in docs[0]["prompts"]) > 0  # the check above compared non-trivial counts


@pytest.mark.integration
def test_run_writes_kl_json(sweep):
    _, jobs, added = sweep
    for j in jobs:
        d = json.loads((j / "kl.json").read_text())
        assert d["samples_from"] == "base" and "BASE" in d["definition"]
        assert d["n_sequences"] == PROMPTS * KL_SAMPLES and d["tokens"] >= d["n_sequences"]
        # one SFT step at lr 0.05 moved the model: both KLs strictly positive
        assert d["kl_forward"] > 1e-6 and d["kl_reverse"] > 1e-6
        assert d["kl_forward"] == pytest.approx(np.mean([p["forward"] for p in d["per_prompt"].values()]))
        assert d["kl_forward_per_token"] == pytest.approx(d["kl_forward"] * d["n_sequences"] / d["tokens"])
    assert len(added["kl-samples"]) == 1


@pytest.mark.integration
def test_report_sections(sweep):
    from harness.analysis.sweep import load_sweep, per_run
    from harness.report.base import Context
    from harness.report.sections.passk_kl import render_kl, render_passk

    path, _, _ = sweep
    sw = load_sweep(path)
    ctx = Context(sw, path / "report")
    ctx.out_dir.mkdir(exist_ok=True)
    ctx.runs = per_run(sw)
    text = render_passk(ctx)
    assert "crossover k" in text
    t = ctx.tables["passk"]
    row = t[t["difficulty"] == ALL].iloc[0]
    assert row["n"] == 2 and row["n samples"] == N and row["prompts"] == PROMPTS
    pass1 = [json.loads((sw.run(r).path / "passk.json").read_text())["pass1_run"] for r in sw.table["run"]]
    assert row["run pass@1"].startswith(f"{np.mean(pass1):.3g}")
    assert (ctx.out_dir / "passk_curves.png").stat().st_size > 0 and ctx.figures
    assert "KL(base‖run) per sequence" in render_kl(ctx)
    kl = [json.loads((sw.run(r).path / "kl.json").read_text())["kl_forward"] for r in sw.table["run"]]
    np.testing.assert_allclose(sorted(ctx.runs["kl_forward"]), sorted(kl))


# --- the report on hand-made artifacts ---------------------------------------------------------------------


def _write_passk(job, counts: list[tuple[str, int, int]], n: int = 4) -> None:
    prompts = [{"prompt_id": f"p{i}", "group": g, "n": n, "c_base": cb, "c_run": cr}
               for i, (g, cb, cr) in enumerate(counts)]
    groups = group_curves(prompts, n)
    (job / "passk.json").write_text(json.dumps({
        "settings": {"n": n}, "base_key": "b0", "groups": groups, "prompts": prompts,
        "pass1_run": groups[ALL]["run_pass1"], "crossover_k": groups[ALL]["crossover_k"]}))


def test_report_pools_seeds_per_group_by_hand(tmp_path):
    """Two conditions x two seeds, two difficulty groups, n = 4. RLVR: d1 run 4/4 in both seeds (base 1/4:
    crossover at k = n = 4 where both reach 1), d2 run 1/4 and 3/4 (base 2/4). SFT: the run equals the base."""
    from harness.analysis.sweep import load_sweep, per_run
    from harness.report.base import Context
    from harness.report.sections.passk_kl import render_kl, render_passk
    from tests.analysis.test_sweep import make_run

    sweep = tmp_path / "s"
    kl = {("rlvr", 0): 0.1, ("rlvr", 1): 0.3, ("sft", 0): 0.5, ("sft", 1): 0.5}
    for obj in ("rlvr", "sft"):
        for seed in (0, 1):
            job = make_run(sweep, [f"objective={obj}", f"seed={seed}"])
            d2 = 1 if seed == 0 else 3
            _write_passk(job, [("d1", 1, 4), ("d2", 2, d2)] if obj == "rlvr" else [("d1", 1, 1), ("d2", 2, 2)])
            (job / "kl.json").write_text(json.dumps({"samples_from": "base", "kl_forward": kl[obj, seed],
                                                     "kl_reverse": 2 * kl[obj, seed]}))
    sw = load_sweep(sweep)
    ctx = Context(sw, tmp_path / "report")
    ctx.out_dir.mkdir()
    ctx.runs = per_run(sw)
    render_passk(ctx)
    t = ctx.tables["passk"].set_index(["objective", "difficulty"])
    assert list(t.loc["rlvr"].index) == [ALL, "d1", "d2"]
    rl = t.loc["rlvr"]
    assert rl.loc["d1", "run pass@1"] == "1 ± 0" and rl.loc["d1", "base pass@1"] == "0.250"
    assert rl.loc["d1", "crossover k"] == "4" and rl.loc["d1", "crossover k per seed"] == "4 4"
    # d2: run pass@1 over seeds 0.25, 0.75 -> 0.5 ± t(0.975, 1)·sd/√2 = 12.706·0.3536/1.414 = 3.18
    assert rl.loc["d2", "run pass@1"] == "0.5 ± 3.18"
    # d2 mean run curve = mean of c=1 ([.25,.5,.75,1]) and c=3 ([.75,1,1,1]) = [.5,.75,.875,1];
    # base c=2: [.5, 5/6, 1, 1] -> base >= run already at k = 1; per seed: seed 0 (c=1) at k = 1, seed 1 (c=3,
    # [.75, 1, 1, 1]) at k = 3, where both reach 1
    assert rl.loc["d2", "crossover k"] == "1" and rl.loc["d2", "crossover k per seed"] == "1 3"
    assert (t.loc["sft", "crossover k"] == "1").all()  # the run equals the base: never ahead
    assert (ctx.out_dir / "passk_curves.png").exists()
    render_kl(ctx)
    k = ctx.tables["kl"].set_index("objective")
    assert k.loc["rlvr", "KL(base‖run) per sequence"] == "0.2 ± 1.271"
    assert k.loc["sft", "KL(run‖base) per sequence"] == "1 ± 0"
    assert k.loc["rlvr", "samples from"] == "base"
