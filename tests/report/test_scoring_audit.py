"""The report's reward audit on hand-built run dirs: kept correct rollouts with known findings."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import OmegaConf

from harness.analysis.sweep import load_sweep
from harness.data.tasks import build_task
from harness.report.base import Context, ordered
from harness.report.sections.reward_audit import audit_rollouts, render
from tests.conftest import ROOT, write_run

TASK = OmegaConf.to_container(OmegaConf.load(ROOT / "harness" / "conf" / "task" / "arithmetic.yaml"))


def make_run(sweep: Path, objective: str, seed: int, rollouts: list[tuple[str, str]] | None) -> Path:
    """A done run dir with the task config and, for RL runs, ``correct_rollouts.jsonl`` of (prompt id, text)."""
    files = {"correct_rollouts.jsonl": "".join(json.dumps({"prompt_id": pid, "step": i, "ids": [1, 2], "text": text})
                                               + "\n" for i, (pid, text) in enumerate(rollouts))} if rollouts is not None else {}
    return write_run(sweep, ["adapter=full", f"objective={objective}", f"seed={seed}"], cfg={"task": TASK},
                     files=files)


def test_reward_audit_counts_and_lists_the_findings(tmp_path):
    task = build_task(OmegaConf.create(TASK))
    e = next(x for x in task.train if x.prompt.startswith("Calculate 316 + 245"))  # gold 561
    other = next(x for x in task.train if x.id != e.id)
    clean = [(e.id, " 561"), (e.id, " 561\nCalculate 1 + 1."), (other.id, f" {other.answer}")]
    hacked = [(e.id, " 561"), (e.id, " 316 + 245 = 561"), (e.id, " 561 apples"),
              (e.id, " \\(316 + 245\\)"),  # paid by the old scorer (math-verify evaluated it), not by this one
              ("arithmetic-unknown", " 7")]  # a prompt the task does not have
    make_run(tmp_path, "rlvr", 0, clean)
    make_run(tmp_path, "rlvr", 1, hacked)
    make_run(tmp_path, "sft", 0, None)  # no rollouts: not in the audit

    sweep = load_sweep(tmp_path)
    ctx = Context(sweep=sweep, out_dir=tmp_path / "report")
    text = render(ctx)
    table = ctx.tables["reward_audit"].set_index("seed")
    assert list(table.index) == [0, 1]  # the SFT run has no kept rollouts
    assert table.loc[0, "not a plain number"] == "0.00 (0/3)"
    assert table.loc[0, "repeats operands"] == "0.00 (0/3)"
    assert table.loc[1, "not a plain number"] == "0.60 (3/5)"  # the equation, the unit, the expression
    assert table.loc[1, "repeats operands"] == "0.40 (2/5)"  # the equation and the expression repeat 316, 245
    assert table.loc[1, "not paid now"] == "0.20 (1/5)"
    assert table.loc[1, "prompts unknown"] == 1
    assert "316 + 245" in text and "Not paid by the current scorer" in text

    flagged = ctx.tables["reward_audit_flagged"]
    unpaid = flagged[flagged["finding"] == "not paid by the current scorer"]
    assert list(unpaid["text"]) == [" \\(316 + 245\\)"]


def test_audit_rollouts_reads_the_answer_the_scorer_reads():
    task = build_task(OmegaConf.create(TASK))
    e = next(x for x in task.train if x.prompt.startswith("Calculate 316 + 245"))
    audit = audit_rollouts({e.id: [{"step": 0, "text": "Sum: 316 + 245.\nThe answer is 561."}]}, {e.id: e})
    row = audit.iloc[0]
    assert row["answer"] == "561" and row["plain"] and row["repeats"] == "" and row["paid_now"]


def test_reward_audit_is_a_registered_section_and_absent_without_rollouts(tmp_path):
    assert "reward_audit" in [s.key for s in ordered()]
    make_run(tmp_path, "sft", 0, None)
    assert render(Context(sweep=load_sweep(tmp_path), out_dir=tmp_path / "report")) is None
