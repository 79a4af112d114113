"""The surgery and trajectory report sections on hand-built sweeps with known numbers: the table's cells (mean
over seeds ± the 95 % t half-width), the PNG per edit family and the PULSE curve, and no section at all when no
run has the artifacts (every existing report stays as it was)."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from harness.analysis.sweep import load_sweep
from harness.report.base import Context
from harness.report.sections import surgery as surgery_section
from harness.report.sections import trajectory as trajectory_section
from tests.claims.test_claims import make_run
from tests.claims.test_surgery_claims import summary, surgery

KEPT = (0.8, 0.9, 1.0)  # held-out fraction kept by rank-1 over three seeds: mean 0.9, sd 0.1
HALF = stats.t.ppf(0.975, 2) * 0.1 / math.sqrt(3)  # its 95 % t half-width (≈ 0.248)


def build(tmp_path, with_artifacts: bool = True):
    for s, kept in enumerate(KEPT):
        files = {}
        if with_artifacts:
            files["surgery.json"] = surgery({"rank1": ("rank", {"k": 1}, kept, 0.5, 0.05, 0.0, 0.2 + 0.1 * s),
                                             "restore_top20": ("restore_top", {"f": 0.2}, 0.7, 0.3, 0.1, 0.1, 0.4)})
            traj = summary(0.9 + 0.01 * s, 0.01)
            traj["pulse"]["bfloat16"].update({"steps": [1, 2, 3], "changed": [0.02, 0.01, 0.005]})
            files["trajectory_summary.json"] = traj
        make_run(tmp_path, "full", "rlvr", s, acc=0.6, ood=-0.05, files=files)
    return Context(load_sweep(tmp_path), tmp_path / "report")


def test_surgery_table_on_known_numbers(tmp_path):
    ctx = build(tmp_path)
    ctx.out_dir.mkdir()
    text = surgery_section.render(ctx)
    table = ctx.tables["surgery"].set_index("edit")
    assert list(table.index) == ["rank k=1", "restore_top f=0.2"]
    r1 = table.loc["rank k=1"]
    assert r1["n"] == 3 and r1["entry"] == "rank1" and r1["family"] == "rank"
    assert r1["held-out gain kept"] == f"0.9 ± {HALF:.3g}"
    assert r1["‖T(ΔW)‖/‖ΔW‖"] == f"0.3 ± {HALF:.3g}"  # 0.2, 0.3, 0.4: the same spread
    assert r1["random null, held-out"] == "0.05 ± 0"  # identical across seeds: no spread
    assert r1["OOD change kept"] == "0.5 ± 0" and r1["undefined (held-out)"] == 0
    assert table.loc["restore_top f=0.2", "family"] == "restore"
    assert "| rank k=1 |" in text
    assert {p.name for p in ctx.figures} == {"surgery_rank.png", "surgery_restore.png"}
    assert all(p.stat().st_size > 0 for p in ctx.figures)


def test_undefined_fractions_are_counted_not_averaged(tmp_path):
    for s in range(2):
        make_run(tmp_path, "full", "rlvr", s, acc=0.6, files={"surgery.json": surgery(
            {"rank1": ("rank", {"k": 1}, 0.9, 0.5)}, told=s == 0)})
    ctx = Context(load_sweep(tmp_path), tmp_path / "report")
    ctx.out_dir.mkdir()
    surgery_section.render(ctx)
    row = ctx.tables["surgery"].iloc[0]
    assert row["undefined (held-out)"] == 1 and row["held-out gain kept"] == "0.9"  # the one defined seed alone


def test_trajectory_table_and_pulse_curve(tmp_path):
    ctx = build(tmp_path)
    ctx.out_dir.mkdir()
    text = trajectory_section.render(ctx)
    row = ctx.tables["trajectory"].iloc[0]
    assert row["n"] == 3
    assert row["linear-in-step R²"] == f"0.910 ± {stats.t.ppf(0.975, 2) * 0.01 / math.sqrt(3):.3f}"
    assert row["rank-1-in-time R²"] == "0.990 ± 0.000"
    assert row["bf16 values changed per step (mean share)"] == "0.01 ± 0"
    assert row["held-out acc: extrapolated − trained"] == "–"  # no trajectory_eval.json
    assert "linear-in-step R²" in text
    assert [p.name for p in ctx.figures] == ["trajectory_pulse.png"]


@pytest.mark.parametrize("module", [surgery_section, trajectory_section])
def test_no_section_without_the_artifacts(tmp_path, module):
    ctx = build(tmp_path, with_artifacts=False)
    assert module.render(ctx) is None and not ctx.tables and not ctx.figures
