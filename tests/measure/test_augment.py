"""U5's measurement: the task's augmentations (decompositions with known answers, the generator's own
rephrasings), the similarity arithmetic on hand-built sketches, and one run on the tiny model whose similarities
equal an independent computation; the CLI's bad input."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from harness.data.tasks.reasoning_gym import decompose
from harness.measure.augment import augment_run, chosen, similarities
from tests.conftest import ROOT, compose


@pytest.mark.parametrize(("expression", "expected"), [
    ("4821 + 3975", [("4800 + 3900", 8700), ("21 + 75", 96), ("8700 + 96", 8796)]),
    ("-32 + 559", [("-30 + 550", 520), ("-2 + 9", 7), ("520 + 7", 527)]),
    ("5 - 6 + 7", [("5 - 6", -1), ("-1 + 7", 6)]),
    ("7 + 2", []), ("3 * 4", []), ("(1 + 2) + 3", []),
])
def test_decompose_known_answers(expression, expected):
    assert decompose(expression) == expected
    if expected:  # the last subproblem's answer is the problem's
        assert expected[-1][1] == eval(expression)  # noqa: S307 (a literal of this test)


def test_study_task_augmentations_are_the_same_problem():
    """Every training prompt of the study task: a rephrasing by the generator (other wording, same numbers and
    answer) and subproblems whose answers add up to the gold answer."""
    import re

    from harness.data.tasks import KINDS, build_task

    cfg = compose("task=arithmetic_study").task
    task = build_task(cfg)
    augs = KINDS.get(cfg.kind).augmentations(cfg, task.train)
    assert set(augs) == {e.id for e in task.train}
    for e in task.train:
        kinds = [a.kind for a in augs[e.id]]
        assert kinds.count("rephrase") == 1
        re_ = next(a for a in augs[e.id] if a.kind == "rephrase")
        assert re_.answer == e.answer and re_.prompt != e.prompt
        assert re.findall(r"\d+", re_.prompt) == re.findall(r"\d+", e.prompt)
        subs = [a for a in augs[e.id] if a.kind == "decompose"]
        if subs:  # 2-digit and wider sums: high parts, low parts, their sum
            assert len(subs) == 3 and subs[-1].answer == e.answer
            assert int(subs[0].answer) + int(subs[1].answer) == int(e.answer)
            assert all(a.target == f" {a.answer}" for a in subs)


def test_similarities_hand_built():
    orig = np.eye(3)
    aug = [(0, "rephrase", np.array([1.0, 1.0, 0.0])), (0, "rephrase", np.array([1.0, 0.0, 0.0])),
           (2, "decompose", np.array([0.0, 0.0, 5.0]))]
    sim_orig, sim_aug = similarities(orig, aug)
    assert np.allclose(sim_orig, 0.0)
    # p = 0: cos to (e2, e3) = (1/√2, 0) and (0, 0); p = 2: the original's own direction, cos 0 to e1 and e2
    assert sim_aug[(0, "rephrase")] == pytest.approx([1 / (2 * math.sqrt(2)), 0.0])
    assert sim_aug[(2, "decompose")] == pytest.approx([0.0])


def test_chosen_puts_unlearnable_first():
    rows = [{"prompt_id": str(i), "split": s, "class": c} for i, (s, c) in enumerate(
        [("train", "easy"), ("test", "unlearnable"), ("train", "learnable"), ("train", "unlearnable")])]
    assert [r["prompt_id"] for r in chosen(rows, 2)] == ["3", "2"]


def test_augment_run_on_the_tiny_model(tmp_path, tiny_base):
    """augment.csv's similarities equal sketches computed here independently (same projection, gold answers)."""
    from harness.data.models import load_model
    from harness.data.tasks import build_task
    from harness.measure.gradsim import CountSketch, gradient_params, loglik_gradient_sketch

    cfg = compose("model=tiny", "task=arithmetic_study", "task.n_train=5", "task.n_test=2", "augment.dim=512",
                  "augment.max_prompts=4")
    task = build_task(cfg.task)
    classes = ["unlearnable", "easy", "learnable", "never", "easy"]
    with (tmp_path / "prompts.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["prompt_id", "split", "class"])
        w.writeheader()
        w.writerows({"prompt_id": e.id, "split": "train", "class": c} for e, c in zip(task.train, classes))
    (tmp_path / "ledger.csv").write_text("step,prompt_id,correct\n")
    out = augment_run(cfg, tmp_path, task, tiny_base)
    assert out["prompts"] == 4 and set(out["by_class"]) == {"unlearnable", "learnable", "never", "easy"}
    rows = list(csv.DictReader((tmp_path / "augment.csv").open()))
    assert {r["kind"] for r in rows} <= {"rephrase", "decompose"}

    model, tok = load_model(tiny_base)
    sketch = CountSketch(512, 0)
    names = gradient_params(model, "matrices")
    used = chosen([{"prompt_id": e.id, "split": "train", "class": c} for e, c in zip(task.train, classes)], 4)
    ex = {e.id: e for e in task.train}
    vec = np.stack([loglik_gradient_sketch(model, tok, ex[r["prompt_id"]].prompt, [{"text": ex[r["prompt_id"]].target}],
                                           names, sketch)[0] for r in used])
    unit = vec / np.linalg.norm(vec, axis=1, keepdims=True)
    c = unit @ unit.T
    for i, r in enumerate(used):
        want = (c[i].sum() - 1) / (len(used) - 1)
        got = [float(x["sim_orig"]) for x in rows if x["prompt_id"] == r["prompt_id"]]
        assert got and got[0] == pytest.approx(want, abs=1e-5)
        for x in rows:
            if x["prompt_id"] == r["prompt_id"]:
                assert float(x["delta"]) == pytest.approx(float(x["sim_aug"]) - float(x["sim_orig"]))


def test_augment_skips_without_prompts_or_rollouts(tmp_path):
    cfg = compose("model=tiny", "task=arithmetic_study")
    assert "prompts.csv" in augment_run(cfg, tmp_path, None, "unused")["skipped"]
    (tmp_path / "prompts.csv").write_text("prompt_id,split,class\n")
    assert "not an RL run" in augment_run(cfg, tmp_path, None, "unused")["skipped"]
    assert json.loads((tmp_path / "augment.json").read_text())["skipped"]


@pytest.mark.parametrize("args", [["/nonexistent/sweep"], [".", "max_prompts=3"], [".", "augment.max_promts=3"]])
def test_cli_bad_input_one_line_exit_2(args, tmp_path):
    if args[0] == ".":
        (tmp_path / ".hydra").mkdir()
        (tmp_path / ".hydra" / "config.yaml").write_text("seed: 0\n")
        args = [str(tmp_path), *args[1:]]
    r = subprocess.run([sys.executable, "-m", "harness.measure.augment", *args], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith("error: "), r.stderr
