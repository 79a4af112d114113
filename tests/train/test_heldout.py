"""Held-out accuracy during training (objective.heldout_every): the callback's accuracy is the task scorer's
mean over greedy answers, checked on a task whose gold answers are known to be right for half the prompts."""

from __future__ import annotations

import json

import pytest
import torch

from harness.data.models import load_model
from harness.data.tasks import Example, Task, extract_answer
from harness.train.objectives.common import HeldoutCallback, callbacks
from tests.conftest import compose


def greedy(model, tok, prompts: list[str]) -> list[str]:
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.generate(**enc, do_sample=False, max_new_tokens=8, pad_token_id=tok.pad_token_id)
    return tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)


def test_heldout_accuracy_is_the_scorer_on_greedy_answers(tiny_base, tmp_path):
    model, tok = load_model(tiny_base)
    prompts = [f"What is {i} + {i}?\nAnswer:" for i in range(6)]
    answers = [extract_answer(t) for t in greedy(model, tok, prompts)]
    # gold = the model's own greedy answer for the first 3 prompts, something else for the last 3
    gold = [a if i < 3 else "no such answer" for i, a in enumerate(answers)]
    assert all(answers[:3])  # the tiny model says something on each line
    test = [Example(f"p{i}", p, g, " " + g) for i, (p, g) in enumerate(zip(prompts, gold))]
    task = Task("hand", train=test, test=test)
    cb = HeldoutCallback(tmp_path / "log.jsonl", task, tok, every=5, n=6)
    model.eval()
    assert cb.accuracy(model) == 0.5 and not model.training
    model.train()  # a training model is put back into training mode, the tokenizer's padding side restored
    tok.padding_side = "right"
    assert cb.accuracy(model) == 0.5
    assert model.training and tok.padding_side == "right"


def test_callbacks_only_with_heldout_every(tiny_base, tmp_path):
    cfg = compose("model=tiny", "objective=sft")
    task = Task("hand", train=[], test=[Example("a", "1 + 1 =", "2", " 2")])
    _, tok = load_model(tiny_base)
    assert [type(c).__name__ for c in callbacks(cfg.objective, task, tok, tmp_path, "x")] == ["LogCallback"]
    cfg = compose("model=tiny", "objective=sft", "objective.heldout_every=5")
    assert [type(c).__name__ for c in callbacks(cfg.objective, task, tok, tmp_path, "x")] == \
        ["LogCallback", "HeldoutCallback"]


@pytest.mark.integration
def test_run_logs_heldout_rows(tmp_path):
    from tests.conftest import run_cli

    r = run_cli("model=tiny", "logger=none", "objective.steps=2", "objective.heldout_every=1",
                "objective.heldout_n=4", "task.n_train=4", "task.n_test=4", "eval.enabled=false",
                "entk.enabled=false", out=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    log = next(tmp_path.glob("default/single/*/train_log.jsonl")).read_text().splitlines()
    rows = [json.loads(line) for line in log if "heldout_acc" in line]
    assert [row["step"] for row in rows] == [0, 1, 2] and all(row["heldout_n"] == 4 for row in rows)
