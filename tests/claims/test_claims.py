"""Claims: verdicts on synthetic sweep directories built from hand-made artifacts (the files a real run
writes, read by the real readers), where a claim holds, fails, or is underpowered."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.analysis.sweep import load_sweep
from harness.claims import CLAIMS, CONTRADICTED, INCONCLUSIVE, SUPPORTED, judge_all, ordered
from harness.claims.base import Part, judge
from tests.conftest import ROOT, compose, write_run

LR = {"full": {"sft": 2e-5, "rlvr": 1e-5}, "lora": {"sft": 2e-4, "rlvr": 1e-4}}


def make_run(sweep: Path, adapter: str, objective: str, seed: int, extra: tuple[str, ...] = (), r: int = 8,
             geo: dict | None = None, acc: float | None = None, ood: float | None = None, files: dict | None = None,
             task: str | None = None):
    """A done run dir (:func:`tests.conftest.write_run`) with the given artifacts (geometry_summary.json
    whole_model, eval.json id/ood tasks, any other file by name)."""
    files = dict(files or {})
    if geo is not None:
        files["geometry_summary.json"] = {"whole_model": {"rel_update": 1e-3, **geo}}
    if acc is not None:
        tasks = {"id": {"split": "id", "accuracy": acc, "base_accuracy": 0.4, "delta": acc - 0.4}}
        if ood is not None:
            tasks["ood_x"] = {"split": "ood", "accuracy": 0.5 + ood, "base_accuracy": 0.5, "delta": ood}
        files["eval.json"] = {"tasks": tasks}
    cfg = {"adapter": {"r": r, "lr": LR.get(adapter, LR["full"])}, "objective": {"steps": 2, "lr": None},
           "model": {"dtype": "float32"}, **({"task": {"name": task}} if task else {})}
    return write_run(sweep, [f"adapter={adapter}", f"objective={objective}", f"seed={seed}", *extra], cfg=cfg,
                     files=files)


def verdict(sweep: Path, claim: str) -> tuple[str, str]:
    for c, r in judge_all(load_sweep(sweep)):
        if c.id == claim:
            return r.verdict, r.reason
    raise KeyError(claim)


# --- the rule --------------------------------------------------------------------------------------------


def test_rule_on_hand_made_intervals():
    assert judge(Part("x", -1.0, -1.5, -0.5, 3, 0.0, "below"))[0] == SUPPORTED
    assert judge(Part("x", 1.0, 0.5, 1.5, 3, 0.0, "below"))[0] == CONTRADICTED
    assert judge(Part("x", 0.1, -0.5, 0.7, 3, 0.0, "below"))[0] == INCONCLUSIVE
    assert judge(Part("x", 0.8, 0.6, 0.9, 3, 0.5, "above"))[0] == SUPPORTED
    assert judge(Part("x", 0.0, 0.0, 0.0, 3, 0.0, "above"))[0] == CONTRADICTED  # exactly zero, claim "nonzero"
    v, why = judge(Part("x", -1.0, float("nan"), float("nan"), 1, 0.0, "below"))
    assert v == INCONCLUSIVE and "n = 1" in why
    v, why = judge(Part("x", needs="kl.json"))
    assert v == INCONCLUSIVE and why == "needs: kl.json"


def test_registry_has_every_claim_of_the_issue():
    ids = [c.id for c in ordered()]
    assert {"P1", "P2", "P3", "P4", "P4.X", "P5.I", "P5.III", "P6", "L1", "S1", "E1", "Y1", "R1", "U1", "U2", "U3"} <= set(ids)
    for c in CLAIMS.values():
        assert c.claim and c.source and c.statistic and c.runs and c.null and c.source_figure
    # the summary's drift/rotation tables are labelled as not the paper's
    assert "summary, not in the paper" in CLAIMS["P1"].source_figure
    assert "summary, not in the paper" in CLAIMS["P2"].source_figure


# --- P1: drift ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rl,expected", [(0.2, SUPPORTED), (3.0, CONTRADICTED), (None, INCONCLUSIVE)])
def test_p1_drift(tmp_path, rl, expected):
    seeds = (0,) if rl is None else (0, 1, 2)
    for s in seeds:
        jitter = 1 + 0.05 * s
        sft = {"drift": 0.1 * jitter, "drift_per_rel": 100 * jitter}
        ratio = rl or 0.2
        make_run(tmp_path, "full", "sft", s, geo=sft)
        make_run(tmp_path, "full", "rlvr", s, geo={k: v * ratio for k, v in sft.items()})
    v, why = verdict(tmp_path, "P1")
    assert v == expected, why
    if rl is None:
        assert "n = 1" in why


# --- P4.X: the reference update direction across datasets and RL algorithms -------------------------------


def _cross_csv(sweep: Path, runs: list[Path], cosine: float) -> None:
    """cross_run.csv / geometry_runs.csv as the analyzer writes them: every pair at ``cosine``, unit norms."""
    import itertools

    import pandas as pd

    labels = [f"r{i}" for i in range(len(runs))]
    pd.DataFrame({"label": labels, "run": [r.name for r in runs]}).to_csv(sweep / "geometry_runs.csv", index=False)
    rows = [{"run_a": a, "run_b": b, "scope": "all", "cosine": cosine, "cosine_base": 1e-4, "norm_a": 1.0,
             "norm_b": 1.0, "jaccard": 0.5, "jaccard_base": 0.2, "params": 10**8}
            for a, b in itertools.combinations(labels, 2)]
    pd.DataFrame(rows).to_csv(sweep / "cross_run.csv", index=False)


@pytest.mark.parametrize("cosine,tasks,expected", [(0.5, 2, SUPPORTED), (0.0, 2, CONTRADICTED),
                                                   (0.5, 1, INCONCLUSIVE)])
def test_p4x_reference_direction(tmp_path, cosine, tasks, expected):
    runs = [make_run(tmp_path, "full", obj, s, task="add") for obj in ("rlvr", "rloo") for s in range(3)]
    if tasks == 2:
        runs += [make_run(tmp_path, "full", "rlvr", s, task="gcd", extra=("+claims_arm=gcd",)) for s in range(2)]
    _cross_csv(tmp_path, runs, cosine)
    v, why = verdict(tmp_path, "P4.X")
    assert v == expected, why
    if expected == SUPPORTED:
        # pairwise cosine c to each of J other runs: cos(x, mean_J) = c·J / sqrt(J + J(J−1)c), here 3 rlvr vs
        # 2 gcd runs (by task) and 3 rlvr vs 3 rloo runs (by algorithm)
        from harness.claims.data import ClaimData
        from harness.claims.path_not_taken import p4x

        by_task, by_algo = p4x(ClaimData.load(load_sweep(tmp_path)))
        want = {j: cosine * j / (j + j * (j - 1) * cosine) ** 0.5 - 1e-4 for j in (2, 3)}
        assert by_task.n == 5 and by_algo.n == 6
        assert by_algo.estimate == pytest.approx(want[3])
        assert by_task.estimate == pytest.approx((3 * want[2] + 2 * want[3]) / 5)
    if tasks == 1:
        assert "≥ 2 tasks" in why


# --- P3: off-principal ---------------------------------------------------------------------------------


def _p3_geo(energy: float, overlap: float, s: int) -> dict:
    return {"energy_k16": energy * (1 + 0.03 * s), "energy_null_k16": 0.01, "energy_base_k16": 0.01,
            "mask_overlap_k16": overlap + 0.005 * s, "mask_overlap_null_k16": 0.3, "mask_base": 0.2, "drift": 0.1}


@pytest.mark.parametrize("case,expected", [("holds", SUPPORTED), ("fails", CONTRADICTED), ("one seed", INCONCLUSIVE)])
def test_p3_off_principal(tmp_path, case, expected):
    seeds = (0,) if case == "one seed" else (0, 1, 2)
    for s in seeds:
        rl_energy, rl_overlap = (0.002, 0.1) if case != "fails" else (0.05, 0.6)
        make_run(tmp_path, "full", "rlvr", s, geo=_p3_geo(rl_energy, rl_overlap, s))
        make_run(tmp_path, "full", "sft", s, geo=_p3_geo(0.05, 0.5, s))
    v, why = verdict(tmp_path, "P3")
    assert v == expected, why


def test_p3_zero_update_is_not_evidence(tmp_path):
    for s in (0, 1, 2):
        make_run(tmp_path, "full", "rlvr", s, geo={**_p3_geo(0.002, 0.1, s), "rel_update": 0.0})
        make_run(tmp_path, "full", "sft", s, geo=_p3_geo(0.05, 0.5, s))
    v, why = verdict(tmp_path, "P3")
    assert v == INCONCLUSIVE and "nonzero update" in why


# --- L1: rank-1 LoRA matches full under RL ----------------------------------------------------------------


@pytest.mark.parametrize("gap,seeds,expected", [(0.0, 3, SUPPORTED), (-0.3, 3, CONTRADICTED),
                                                (0.0, 1, INCONCLUSIVE)])
def test_l1_rank1_lora(tmp_path, gap, seeds, expected):
    for s in range(seeds):
        make_run(tmp_path, "full", "rlvr", s, acc=0.6 + 0.01 * s)
        make_run(tmp_path, "lora", "rlvr", s, extra=("adapter.r=1",), r=1, acc=0.6 + gap + 0.012 * s - 0.006)
    v, why = verdict(tmp_path, "L1")
    assert v == expected, why


def test_l1_needs_about_ten_times_the_lr(tmp_path):
    LR["lora"] = {"sft": 2e-5, "rlvr": 1e-5}  # the same lr as full: not the claim's setting
    try:
        for s in range(3):
            make_run(tmp_path, "full", "rlvr", s, acc=0.6)
            make_run(tmp_path, "lora", "rlvr", s, extra=("adapter.r=1",), r=1, acc=0.6 + 0.01 * (s - 1))
        v, why = verdict(tmp_path, "L1")
    finally:
        LR["lora"] = {"sft": 2e-4, "rlvr": 1e-4}
    assert v == INCONCLUSIVE and "lr ratio 1" in why


# --- U1: unlearnable prompts ------------------------------------------------------------------------------


def _prompts_csv(learned: list[bool]) -> str:
    """Hard prompts (pass@1 0 at start) with correct rollouts seen; ``learned`` says which end above τ, plus two
    easy prompts."""
    lines = ["prompt_id,group,split,pass_start,pass_end,rollouts_seen,correct_seen,gold_seen"]
    for i, ok in enumerate(learned):
        lines.append(f"h{i},d3,train,0.0,{0.5 if ok else 0.0},16,2,0")
    lines += ["e0,d1,train,0.9,1.0,16,12,0", "e1,d1,train,0.8,0.9,16,10,0"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("case,expected", [("holds", SUPPORTED), ("fails", CONTRADICTED), ("one seed", INCONCLUSIVE)])
def test_u1_unlearnable_share(tmp_path, case, expected):
    seeds = (0,) if case == "one seed" else (0, 1, 2)
    for s in seeds:
        learned = [True] * 10 if case == "fails" else [True] * (7 + s % 2) + [False] * (3 - s % 2)
        make_run(tmp_path, "full", "rlvr", s, files={"prompts.csv": _prompts_csv(learned)})
    v, why = verdict(tmp_path, "U1")
    assert v == expected, why


def test_u1_says_what_learned_means_in_samples(tmp_path):
    """K = 8 at τ = 0.1: one correct sample of 8 at the end counts as learned; the note says so."""
    from harness.claims.data import ClaimData

    for s in (0, 1, 2):
        text = _prompts_csv([True] * 3).splitlines()
        csv = "\n".join([text[0] + ",k"] + [line + ",8" for line in text[1:]]) + "\n"
        make_run(tmp_path, "full", "rlvr", s, files={"prompts.csv": csv})
    from harness.claims.unlearnability import u1

    (part,) = u1(ClaimData.load(load_sweep(tmp_path)))
    assert "K = 8: learned = at least 1 of 8 samples correct" in part.note


# --- Y1: pass@k, base catches up ----------------------------------------------------------------------------


def _passk(p1_run: float, p1_base: float, pn_run: float, pn_base: float) -> dict:
    return {"k": list(range(1, 9)), "pass1_run": p1_run, "pass1_base": p1_base, "passn_run": pn_run,
            "passn_base": pn_base, "crossover_k": 4 if pn_base >= pn_run else None}


@pytest.mark.parametrize("case,expected", [("holds", SUPPORTED), ("fails", CONTRADICTED), ("one seed", INCONCLUSIVE)])
def test_y1_pass_at_k(tmp_path, case, expected):
    seeds = (0,) if case == "one seed" else (0, 1, 2)
    for s in seeds:
        e = 0.01 * s
        pk = (_passk(0.5 + e, 0.3, 0.80 + e, 0.85) if case != "fails" else _passk(0.5 + e, 0.3, 0.95 + e, 0.6))
        make_run(tmp_path, "full", "rlvr", s, files={"passk.json": pk})
    v, why = verdict(tmp_path, "Y1")
    assert v == expected, why


# --- R1: forgetting vs forward KL ----------------------------------------------------------------------------


@pytest.mark.parametrize("case,expected", [("holds", SUPPORTED), ("fails", CONTRADICTED), ("few runs", INCONCLUSIVE)])
def test_r1_forgetting_tracks_kl(tmp_path, case, expected):
    # per seed: 4 runs; forgetting (−OOD change) rises with KL ("holds") or falls ("fails")
    conds = [("full", "sft"), ("full", "rlvr"), ("lora", "sft"), ("lora", "rlvr")]
    kls = {("full", "sft"): 0.8, ("full", "rlvr"): 0.1, ("lora", "sft"): 0.5, ("lora", "rlvr"): 0.05}
    for s in (0, 1, 2):
        for adapter, obj in conds[:2] if case == "few runs" else conds:
            kl = kls[(adapter, obj)] * (1 + 0.02 * s)
            drop = kl * 0.1 if case != "fails" else 0.1 - kl * 0.1
            gain = 0.2 + 0.01 * s
            make_run(tmp_path, adapter, obj, s, acc=0.4 + gain, ood=-drop,
                     files={"kl.json": {"kl_forward": kl, "samples_from": "base"}})
    v, why = verdict(tmp_path, "R1")
    assert v == expected, why


# --- the whole table, the CLI and the report section ---------------------------------------------------------


def test_missing_inputs_say_what_they_need(tmp_path):
    for s in (0, 1):
        make_run(tmp_path, "full", "rlvr", s)
    results = {c.id: r for c, r in judge_all(load_sweep(tmp_path))}
    assert all(r.verdict == INCONCLUSIVE for r in results.values())
    assert "needs: passk.json" in results["Y1"].reason
    assert "needs: prompts.csv" in results["U1"].reason
    assert "needs: kl.json" in results["R1"].reason


@pytest.mark.integration
def test_cli_writes_table_and_plot_and_refuses_a_bad_dir(tmp_path):
    for s in (0, 1, 2):
        make_run(tmp_path / "sw", "full", "sft", s, geo={"drift": 0.1 + 0.01 * s, "drift_per_rel": 100 + s})
        make_run(tmp_path / "sw", "full", "rlvr", s, geo={"drift": 0.02 + 0.01 * s, "drift_per_rel": 20 + s})
    r = subprocess.run([sys.executable, "-m", "harness.claims", str(tmp_path / "sw")], capture_output=True, text=True,
                       cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "P1" in r.stdout and SUPPORTED in r.stdout
    import pandas as pd

    table = pd.read_csv(tmp_path / "sw" / "claims.csv")
    assert table.set_index("id").loc["P1", "verdict"] == SUPPORTED
    assert (tmp_path / "sw" / "claims_forest.png").stat().st_size > 1000
    assert "| P1 |" in (tmp_path / "sw" / "claims.md").read_text()
    bad = subprocess.run([sys.executable, "-m", "harness.claims", str(tmp_path / "nope")], capture_output=True,
                         text=True, cwd=ROOT, timeout=300)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_report_section_after_table5(tmp_path):
    from harness.analysis.sweep import per_run
    from harness.report.base import Context
    from harness.report.base import ordered as sections
    from harness.report.sections.claims import render

    for s in (0, 1):
        make_run(tmp_path, "full", "sft", s, geo={"drift": 0.1})
    keys = [s.key for s in sections()]
    assert keys.index("table5_entk") < keys.index("claims") < keys.index("figures")
    sweep = load_sweep(tmp_path)
    ctx = Context(sweep, tmp_path / "report")
    ctx.runs = per_run(sweep)
    text = render(ctx)
    assert "| P1 |" in text and "report/claims_forest.png" in text
    assert "claims" in ctx.tables and ctx.figures


@pytest.mark.parametrize("study", ["claims", "claims_quick"])
def test_claims_studies_compose(study):
    cfg = compose(f"sweeps={study}")
    assert cfg.name == study and cfg.task.name and cfg.prompt_filter.enabled


@pytest.mark.integration
@pytest.mark.parametrize("study,runs", [("claims", 57), ("claims_quick", 8)])
def test_claims_study_grid_runs_what_the_claims_read(study, runs):
    """Each arm runs under the objectives it lists (the rest of the grid is skipped): the study file's run count,
    the arms' settings, and which runs measure pass@k / pass rates."""
    params = yaml.safe_load((ROOT / "harness" / "conf" / "sweeps" / f"{study}.yaml").read_text())["hydra"]["sweeper"]["params"]
    arms, objectives = params["+claims_arm"].split(","), params["objective"].split(",")
    seeds = params["seed"].split(",")
    cells = {}
    for arm in arms:
        for obj in objectives:
            cfg = compose(f"sweeps={study}", f"+claims_arm={arm}", f"objective={obj}")
            if not cfg.run_objectives or obj in cfg.run_objectives:
                cells[(arm, obj)] = cfg
    assert len(cells) * len(seeds) == runs
    for (arm, obj), cfg in cells.items():
        assert cfg.objective.steps == 20 and cfg.kl.enabled
        assert cfg.passk.enabled == cfg.passrate.enabled == cfg.augment.enabled == (study == "claims" and arm == "full"), (
            arm, obj)
        assert cfg.entk.enabled == (arm == "full")
    assert cells[("lora_r1", "rlvr")].adapter.r == 1
    if study == "claims":
        assert cells[("full_kl", "rlvr")].objective.beta > 0 and cells[("full_bf16", "rlvr")].model.dtype == "bfloat16"
        assert cells[("full_chain_sum", "rlvr")].task.name == "chain_sum"
        assert ("full_rloo", "rloo") in cells and ("full", "rloo") not in cells
        assert cells[("full_random_reward", "rlvr")].objective.reward == "random"
        assert cells[("full_format_reward", "rlvr")].objective.reward == "format"
        assert ("full_rft", "rft") in cells and ("full", "rft") not in cells
        assert cells[("dora", "rlvr")].adapter.name == "dora" and cells[("vera", "rlvr")].adapter.name == "vera"
        assert [cells[(a, "rlvr")].adapter.name for a in ("pissa", "milora", "lora_r8")] == ["pissa", "milora", "lora"]
        gkd = cells[("full_gkd", "gkd")]  # OD1: a teacher every job can build or read, and no other cell
        assert gkd.adapter.name == "full" and gkd.objective.teacher == "model:smollm2-135m-teacher"
        assert [k for k in cells if k[1] == "gkd"] == [("full_gkd", "gkd")]
        assert cells[("lora_r8", "rlvr")].adapter.r == 8 and ("milora", "sft") not in cells
        assert cells[("full", "rlvr")].trajectory.entk and not cells[("full_rft", "rft")].trajectory.every
