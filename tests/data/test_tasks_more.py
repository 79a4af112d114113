"""The reasoning-gym tasks beside additions (``task=chain_sum | gcd | lcm | letter_counting``): each YAML validates,
builds its fixed-seed split of distinct prompts from every difficulty component, and every gold answer is right
(recomputed here from the prompt text), accepted by the scorer as the model would write it, and a wrong or hedged
answer scores 0."""

from __future__ import annotations

import math
import re

import pytest

from harness.data.tasks import build_task, score
from harness.launch.validate import check
from tests.conftest import compose


def _numbers(text: str) -> list[int]:
    return [int(x) for x in re.findall(r"-?\d+", text)]


def _chain_sum(prompt: str) -> int:
    expr = re.search(r"problem: ([\d +\-]+) =", prompt).group(1)
    assert re.fullmatch(r"\d+( [+-] \d+)+", expr), expr
    terms = expr.split()
    total = int(terms[0])
    for op, x in zip(terms[1::2], terms[2::2]):
        total = total + int(x) if op == "+" else total - int(x)
    return total


def _letters(prompt: str) -> int:
    letter, text = re.search(r'the letter "(.)" appear in the text: "(.*)"\?', prompt).groups()
    return text.lower().count(letter.lower())


# task YAML -> the gold answer recomputed from the prompt (an oracle independent of reasoning-gym)
ORACLES = {
    "chain_sum": _chain_sum,
    "gcd": lambda p: math.gcd(*_numbers(p.split("numbers:")[1].split(".")[0])),
    "lcm": lambda p: math.lcm(*_numbers(p.split("numbers:")[1].split("\n")[0])),
    "letter_counting": _letters,
}


@pytest.mark.parametrize("name", sorted(ORACLES))
def test_task_builds_a_split_of_distinct_prompts(name):
    cfg = compose("model=tiny", "logger=none", f"task={name}")
    assert check(cfg) == []
    t = cfg.task
    assert t.kind == "reasoning_gym" and t.dataset == name != "basic_arithmetic"
    task = build_task(t)
    assert (len(task.train), len(task.test)) == (t.n_train, t.n_test)
    every = task.train + task.test
    assert len({e.prompt for e in every}) == len(every) and len({e.id for e in every}) == len(every)
    groups = [c.group for c in t.mix]
    assert {e.group for e in every} == set(groups)  # every difficulty component contributes prompts
    for e in every:
        assert e.prompt.endswith("\nAnswer:") and e.target == " " + e.answer
    again = build_task(t)  # fixed seed: the same split every time
    assert [e.id for e in again.train] == [e.id for e in task.train]


@pytest.mark.parametrize("name", sorted(ORACLES))
def test_gold_answers_are_right_and_scored(name):
    task = build_task(compose("model=tiny", "logger=none", f"task={name}").task)
    oracle = ORACLES[name]
    for e in task.train + task.test:
        gold = int(e.answer)
        assert gold == oracle(e.prompt), (e.prompt, e.answer)
        assert score(e.answer, e.answer) == 1
        assert score(e.target + "\n", e.answer) == 1  # as SFT trains the model to write it
        assert score(f" {gold + 1}", e.answer) == 0
        assert score(f" {gold + 1} or {gold}", e.answer) == 0  # a hedge
        assert score(f" 1{gold}" if gold >= 0 else f" {gold}1", e.answer) == 0  # contains the gold, is not it


def test_a_task_without_common_settings_builds():
    """``common`` is optional (it crashed when absent)."""
    from harness.data.tasks import build_task
    from tests.conftest import compose

    task = build_task(compose("model=tiny", "task=gcd", "~task.common").task)
    assert len(task.train) == 40 and len(task.test) == 40
