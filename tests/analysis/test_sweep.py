"""The run artifact contract reader (harness.analysis.sweep), job directory names, and the tables it feeds."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from harness.analysis.sweep import load_sweep, per_run
from harness.core.overrides import MAX_READABLE, job_dir_name
from harness.report.base import Context
from harness.report.sections.accuracy import accuracy_table
from harness.report.sections.consistency import table3
from harness.report.sections.geometry import table1
from tests.conftest import write_run


def make_run(sweep: Path, overrides: list[str], status: str = "done", eval_id: float | None = None,
             base_id: float = 0.5, parameters: dict | None = None) -> Path:
    """A run dir (:func:`tests.conftest.write_run`) with its status and, when given, eval.json's id task."""
    record = {"status": status, "reason": None if status == "done" else "boom",
              **({"parameters": parameters} if parameters else {})}
    files = {"eval.json": {"tasks": {"id": {"split": "id", "accuracy": eval_id, "n": 10, "base_accuracy": base_id,
                                            "delta": eval_id - base_id}}}} if eval_id is not None else {}
    return write_run(sweep, overrides, cfg={"adapter": {"r": 8}, "objective": {"steps": 2}, "store_dtype": "float32"},
                     choices={"model": "tiny", "task": "arithmetic"}, record=record, files=files)


# --- job directory names ---------------------------------------------------------------------------------


def test_job_names_readable_for_simple_overrides_and_unchanged_from_before():
    assert job_dir_name(["adapter=lora", "objective=rlvr", "seed=0"]) == "adapter=lora,objective=rlvr,seed=0"
    # launch-only keys never name a directory: a relaunch with force/another launcher finds the same dirs
    assert job_dir_name(["seed=0", "force=true", "hydra/launcher=submitit_local", "logger.mode=online",
                         "sweeps=demo", "adapter=lora", "objective=rlvr"]) == "adapter=lora,objective=rlvr,seed=0"


def test_job_names_distinct_for_paths_and_hub_ids():
    a = job_dir_name(["model=hf", "model.name_or_path=org/model-a", "seed=0"])
    b = job_dir_name(["model=hf", "model.name_or_path=org/model-b", "seed=0"])
    assert a != b and "/" not in a + b
    c = job_dir_name(["task=jsonl", "task.path=/data/a.jsonl"])
    d = job_dir_name(["task=jsonl", "task.path=/data/b.jsonl"])
    assert c != d and "/" not in c + d


def test_job_names_bounded_with_a_dozen_overrides():
    many = ["objective=rlvr", "objective.lr=2e-5", "objective.num_generations=8", "objective.prompts_per_step=2",
            "objective.max_completion_length=8", "objective.temperature=1.0", "objective.beta=0.0",
            "objective.steps=80", "task.n_train=400", "task.n_test=200", "adapter=full", "seed=0",
            "task.mix=[{dataset_kwargs:{min_terms:2,max_terms:2,min_digits:2,max_digits:3}},{group:d3}]"]
    name = job_dir_name(many)
    assert len(name.encode()) < 255 and len(name) <= MAX_READABLE + 20
    other = job_dir_name([m.replace("2e-5", "3e-5") for m in many])
    assert name != other


# --- the sweep table ---------------------------------------------------------------------------------------


def test_swept_settings_found_one_way(tmp_path):
    for seed in (0, 1):
        for r in (1, 64):
            make_run(tmp_path, ["adapter=lora", "objective=sft", f"adapter.r={r}", f"seed={seed}",
                                "logger.mode=offline", f"store_dtype={'float32' if r == 1 else 'bfloat16'}",
                                "eval.limit=40"])
    sweep = load_sweep(tmp_path)
    # adapter.r and store_dtype vary: settings; seed is not; eval.limit is constant; logger.mode is launch-only
    assert sweep.settings == ["adapter.r", "store_dtype"]
    assert sweep.keys == ["adapter", "objective", "adapter.r", "store_dtype"]
    assert len(list(sweep.groups())) == 2 and all(len(g) == 2 for _, g in sweep.groups())
    assert set(sweep.table["condition"]) == {"lora/sft [adapter.r=1,store_dtype=float32]",
                                             "lora/sft [adapter.r=64,store_dtype=bfloat16]"}


def test_settings_that_change_numbers_are_not_pooled(tmp_path):
    """eval.* / entk.* / store_dtype change the figures: runs that differ in them form separate groups."""
    make_run(tmp_path, ["adapter=full", "objective=sft", "seed=0", "eval.limit=10"], eval_id=0.6)
    make_run(tmp_path, ["adapter=full", "objective=sft", "seed=0", "eval.limit=200"], eval_id=0.8)
    sweep = load_sweep(tmp_path)
    assert sweep.settings == ["eval.limit"] and len(list(sweep.groups())) == 2


def test_pairs_across_objectives_agree_on_every_other_setting(tmp_path):
    """The lora_rank bug: an r=1 SFT run was paired with an r=64 RLVR run."""
    for obj in ("sft", "rlvr"):
        for r in (1, 64):
            make_run(tmp_path, ["adapter=lora", f"objective={obj}", f"adapter.r={r}", "seed=0"])
    sweep = load_sweep(tmp_path)
    pairs = sweep.pairs("objective")
    assert len(pairs) == 2
    for a, b, shared in pairs:
        ra, rb = sweep.table.set_index("run").loc[a], sweep.table.set_index("run").loc[b]
        assert ra["adapter.r"] == rb["adapter.r"] == shared["adapter.r"]
    assert sweep.pairs("seed") == []  # one seed per group


def test_table3_never_pairs_runs_that_differ_in_another_setting(tmp_path):
    runs = {}
    for obj in ("sft", "rlvr"):
        for r in (1, 64):
            runs[(obj, r)] = make_run(tmp_path, ["adapter=lora", f"objective={obj}", f"adapter.r={r}", "seed=0"])
    labels = {job.name: f"lab{i}" for i, job in enumerate(runs.values())}
    pd.DataFrame({"label": list(labels.values()), "run": list(labels)}).to_csv(tmp_path / "geometry_runs.csv")
    rows = []
    for i, a in enumerate(runs.values()):
        for b in list(runs.values())[i + 1:]:
            # a cosine that tells which pair it came from: 0.9 only for same-r pairs
            same_r = a.name.split("adapter.r=")[1][:2] == b.name.split("adapter.r=")[1][:2]
            rows.append({"run_a": labels[a.name], "run_b": labels[b.name], "scope": "all",
                         "cosine": 0.9 if same_r else 0.1, "cosine_base": 0.0, "jaccard": 0.5, "jaccard_base": 0.4})
    pd.DataFrame(rows).to_csv(tmp_path / "cross_run.csv", index=False)
    sweep = load_sweep(tmp_path)
    t = table3(Context(sweep, tmp_path / "report"))
    assert list(t["comparison"]) == ["across objectives", "across objectives"]
    assert sorted(t["adapter.r"]) == ["1", "64"] and set(t["cosine"]) == {"0.900"}


def test_accuracy_section_and_table1_group_alike_with_intervals(tmp_path):
    """The accuracy section used to average over swept settings (and disagree with Table 1)."""
    for seed, (a1, a64) in enumerate([(0.6, 0.9), (0.7, 0.8), (0.5, 0.85)]):
        make_run(tmp_path, ["adapter=lora", "objective=sft", "adapter.r=1", f"seed={seed}"], eval_id=a1)
        make_run(tmp_path, ["adapter=lora", "objective=sft", "adapter.r=64", f"seed={seed}"], eval_id=a64)
    make_run(tmp_path, ["adapter=lora", "objective=sft", "adapter.r=64", "seed=9"], status="failed")
    sweep = load_sweep(tmp_path)
    ctx = Context(sweep, tmp_path / "report")
    ctx.runs = per_run(sweep)
    acc = accuracy_table(ctx)
    t1 = table1(ctx)
    # r=1: mean 0.6, sd 0.1, n 3 -> half-width t(0.975, 2) * 0.1 / sqrt(3) = 0.248
    row = acc[acc["adapter.r"] == "1"].iloc[0]
    assert row["n"] == 3 and row["id (n=10)"] == "0.600 ± 0.248 (Δ +0.100 ± 0.248)"
    gains = dict(zip(t1["adapter.r"], t1["ID accuracy gain"]))
    assert gains == {"1": "+0.100 ± 0.248", "64": "+0.350 ± 0.124"}
    assert list(t1["n"]) == [3, 3]  # the failed run is not counted


def test_table2_shows_each_adapters_trainable_share(tmp_path):
    """Trainable parameters are recorded per run (run.json ``parameters``) and reported beside the accuracy."""
    from harness.analysis.sweep import per_run
    from harness.report.base import Context
    from harness.report.sections.peft import table2

    sw = tmp_path / "sw"
    sizes = {"full": {"total": 1000, "trainable": 1000}, "lora": {"total": 1003, "trainable": 3}}
    for adapter, acc in (("full", 0.6), ("lora", 0.55)):
        for objective in ("sft", "rlvr"):
            for seed in (0, 1):
                make_run(sw, [f"adapter={adapter}", f"objective={objective}", f"seed={seed}"], eval_id=acc,
                         parameters=sizes[adapter])
    ctx = Context(load_sweep(sw), tmp_path / "out")
    ctx.runs = per_run(ctx.sweep)
    assert ctx.runs.loc[ctx.runs["adapter"] == "lora", "trainable_share"].tolist() == [3 / 1003] * 4
    (row,) = table2(ctx).to_dict("records")
    assert row["adapter"] == "lora" and row["trainable"] == "0.299 %"
    assert row["sft: acc / full"] == "0.550 / 0.600 = 0.92"


def test_learning_section_marks_what_is_not_distinguishable(tmp_path):
    """One seed: the run's paired interval vs the base decides; a rising reward shows with a Welch interval."""
    up = make_run(tmp_path, ["adapter=full", "objective=rlvr", "seed=0"])
    flat = make_run(tmp_path, ["adapter=lora", "objective=rlvr", "seed=0"])
    for job, ci in ((up, [0.02, 0.10]), (flat, [-0.02, 0.10])):
        (job / "eval.json").write_text(json.dumps({"tasks": {"id": {
            "split": "id", "accuracy": 0.56, "base_accuracy": 0.5, "delta": 0.06, "delta_ci": ci, "n": 200}}}))
    rng = __import__("numpy").random.default_rng(0)
    for job, slope in ((up, 0.01), (flat, 0.0)):
        with open(job / "train_log.jsonl", "w") as fh:
            for step in range(40):
                fh.write(json.dumps({"step": step + 1, "reward": 0.3 + slope * step + 0.01 * rng.standard_normal(),
                                     "frac_reward_zero_std": 0.25}) + "\n")
    from harness.report.sections.learning import learning_table, quarter_change

    t = learning_table(Context(load_sweep(tmp_path), tmp_path / "report")).set_index("adapter")
    assert t.loc["full", "ID change [95% CI]"] == "+0.060 [+0.020, +0.100]"
    assert t.loc["lora", "ID change [95% CI]"].endswith("n.d.")
    assert not t.loc["full", "last − first quarter [95% CI]"].endswith("n.d.")
    assert t.loc["full", "zero-advantage groups"] == "25%"
    # the first and last quarters of 0, 1, ..., 39 differ by exactly 30
    est, lo, hi = quarter_change(__import__("numpy").arange(40.0))
    assert est == 30 and lo < 30 < hi


def test_table1_shows_each_figure_beside_its_null_and_marks_what_is_not_distinguishable(tmp_path):
    cases = {"full": ([0.10, 0.11, 0.12], [0.05, 0.05, 0.05]),  # clearly above its null
             "lora": ([0.05, 0.06, 0.04], [0.05, 0.05, 0.05])}  # the null's size
    for adapter, (drifts, nulls) in cases.items():
        for seed, (d, n) in enumerate(zip(drifts, nulls)):
            job = make_run(tmp_path, [f"adapter={adapter}", "objective=rlvr", f"seed={seed}"])
            (job / "geometry_summary.json").write_text(json.dumps({"whole_model": {
                "drift": d, "drift_null": n, "energy_k16": 0.2, "energy_base_k16": 0.01}}))
    one = make_run(tmp_path, ["adapter=sparse", "objective=rlvr", "seed=0"])
    (one / "geometry_summary.json").write_text(json.dumps({"whole_model": {"drift": 0.3, "drift_null": 0.05}}))
    sweep = load_sweep(tmp_path)
    ctx = Context(sweep, tmp_path / "report")
    ctx.runs = per_run(sweep)
    t = table1(ctx).set_index("adapter")
    assert t.loc["full", "spectral drift"] == "0.11 ± 0.0248 (null 0.05)"
    assert t.loc["lora", "spectral drift"].endswith("(null 0.05) n.d.")
    assert t.loc["sparse", "spectral drift"] == "0.3 (null 0.05) n.d."  # one seed: no interval
    assert t.loc["full", "ΔW energy in W0 top-16"] == "0.2 ± 0 (null 0.01)"


def test_wall_time_spans_parallel_runs_and_skips_runs_without_stamps(tmp_path):
    """Two runs that overlapped: the span is first start to last end, the runs' own times add up separately."""
    stamps = [("2026-01-01T10:00:00", "2026-01-01T10:10:00", 600.0), ("2026-01-01T10:05:00", "2026-01-01T10:20:00", 900.0)]
    for seed, (a, b, total) in enumerate(stamps):
        job = make_run(tmp_path, ["adapter=full", f"seed={seed}"])
        (job / "run.json").write_text(json.dumps({"status": "done", "seed": seed, "started": a, "finished": b,
                                                  "timings": {"total": total}}))
    make_run(tmp_path, ["adapter=full", "seed=2"])  # no timestamps: left out
    assert load_sweep(tmp_path).wall_time() == (1200.0, 1500.0)
    from harness.report.sections.header import _wall

    assert "20.0 min from the first run's start" in _wall(load_sweep(tmp_path))
