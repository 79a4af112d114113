"""The scorer against completions that try to be paid without solving, or to crash or stall it.

Every case has its expected score and the reason; the classes follow issue 18. The restated question is built
from the real prompts of every built-in task kind. ``python -m harness.bench scorer`` times this table.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import re

import pytest
from omegaconf import OmegaConf

from harness.data.tasks import build_task
from harness.data.tasks._adversarial import CASES, TASK_KINDS, restatements
from harness.data.tasks.scoring import extract, score
from tests.conftest import ROOT


@pytest.mark.parametrize("cls,completion,gold,expected,reason", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_adversarial_table(cls, completion, gold, expected, reason):
    assert score(completion, gold) == expected, reason


def test_every_class_is_in_the_table():
    classes = {c[0] for c in CASES}
    assert classes >= {"signs", "hedges", "restated", "words", "units", "thousands", "scientific", "boxes",
                       "extraction", "inputs", "messages", "symbolic"}


# --- the restated question, built from the real prompts of every task kind ---------------------------------

@pytest.mark.parametrize("task", TASK_KINDS)
def test_restated_question_scores_0(task):
    t = build_task(OmegaConf.load(ROOT / "harness" / "conf" / "task" / f"{task}.yaml"))
    checked = 0
    for e in t.train + t.test:
        for text in restatements(task, e.prompt):
            if task in ("gcd", "lcm") and "(" not in text and len(set(re.findall(r"[0-9]+", text))) == 1:
                continue  # "4, 4": the one operand is the gold of gcd(4, 4) — restating it is answering
            assert score(" " + text, e.answer) == 0.0, (e.prompt, text, e.answer)
            checked += 1
    assert checked >= 80 * 3


# --- thread and process safety ------------------------------------------------------------------------------

SYMBOLIC = [(" x + 1", "1 + x", 1.0), (" $x+2$", "1 + x", 0.0), (" \\frac{x}{2}", "x/2", 1.0), (" 42", "42", 1.0)]


def _scores(rows):
    return [score(c, g) for c, g, _ in rows]


def test_symbolic_scores_agree_in_threads():
    """math-verify's own timeout returns False off the main thread; the scorer's bound must not."""
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda r: score(r[0], r[1]), SYMBOLIC * 3))
    assert got == [e for _, _, e in SYMBOLIC] * 3


def test_symbolic_scores_agree_in_a_daemonic_worker_process():
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:  # pool workers are daemonic: they may not start children with multiprocessing
        assert pool.apply(_scores, (SYMBOLIC,)) == [e for _, _, e in SYMBOLIC]


def test_a_check_that_outruns_its_bound_scores_0_and_the_next_one_works():
    from harness.data.tasks import _mathverify

    # a power tower the pre-screen would stop; handed to the helper directly, it is killed at the bound
    assert _mathverify.verify("$2^{2^{40}}$", "$5$", seconds=0.3) is False
    assert _mathverify.verify("$x+1$", "$1+x$") is True


def test_extract_names_the_rule():
    assert extract(" \\boxed{1}")[0] == "boxed"
    assert extract("#### 1")[0] == "####"
    assert extract("so the answer is 1")[0] == "answer is"
    assert extract(" 1")[0] == "first line"
    assert extract(None) == ("", "")
