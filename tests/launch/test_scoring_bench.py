"""``python -m harness.bench scorer``: median/p99/max per call on the adversarial table and real completions."""

from __future__ import annotations

import json
import re

import pytest

from harness.launch import bench


def test_bench_scorer_prints_times_rules_and_slow_calls(tmp_path, capsys):
    rows = [{"text": " 116", "answer": "116"}, {"text": " 12\nCalculate 3 + 4.", "answer": "12"},
            {"text": "So the answer is 7.", "answer": "7"}, {"text": " \\boxed{5}", "answer": "5"}]
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    bench.main(["scorer", f"completions={path}", "repeats=1"])
    out = capsys.readouterr().out
    for label in ("adversarial table, main thread", "adversarial table, worker thread",
                  "real completions, harness scorer", "real completions, math-verify alone"):
        assert re.search(re.escape(label) + r"\s+median .+ p99 .+ max ", out), label
    assert "boxed 1, #### 0, answer is 1, first line 2" in out
    assert re.search(r"calls over 1 s: \d+", out)


def test_bench_scorer_rejects_a_missing_file(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(["scorer", f"completions={tmp_path / 'nope.jsonl'}"])
    assert exc.value.code == 2 and "nope.jsonl" in capsys.readouterr().err
