"""The reward registry (issue 22) on hand-built rollouts with known answers: the verifier pays correctness, the
negated reward its complement, the format reward any readable answer, and the random reward a keyed coin whose
rate is the one set, the same for the same rollout and independent of its correctness."""

from __future__ import annotations

import pytest

from harness.data.rewards import REWARDS, Rollout, Settings
from harness.data.rewards.coin import coin
from harness.data.rewards.format_only import has_answer


def roll(text: object = "42", answer: str = "42", correct: bool = True, pid: str = "p", step: int = 0,
         occurrence: int = 0) -> Rollout:
    return Rollout(text, answer, pid, step, occurrence, correct)


def test_the_registry_lists_the_four_rewards():
    assert REWARDS.names() == ["format", "negated", "random", "verifier"]


@pytest.mark.parametrize("correct", [True, False])
def test_verifier_and_negated_are_complements(correct):
    r = roll(correct=correct)
    assert REWARDS.get("verifier")(r, Settings()) == float(correct)
    assert REWARDS.get("negated")(r, Settings()) == float(not correct)


@pytest.mark.parametrize(("text", "gold", "readable"), [
    ("42", "42", True), ("The answer is 17", "42", True), ("\\boxed{-3}", "42", True),
    ("43 or 42", "42", False),          # a hedge is no answer
    ("50 + 83", "133", False),          # an expression is no answer
    ("hello", "42", False), ("", "42", False), (None, "42", False),
    ("x^2", "x^2 + 1", True),           # a symbolic gold: any non-empty final answer is a format
])
def test_format_pays_a_readable_answer_right_or_wrong(text, gold, readable):
    assert has_answer(text, gold) is readable
    assert REWARDS.get("format")(roll(text, gold, correct=False), Settings()) == float(readable)


def test_random_reward_rates_are_the_set_ones():
    pay = REWARDS.get("random")
    rolls = [roll(f"t{i}", pid=f"p{i % 7}", step=i // 50, correct=bool(i % 2)) for i in range(4000)]
    assert all(pay(r, Settings(rate=0.0)) == 0.0 for r in rolls)
    assert all(pay(r, Settings(rate=1.0)) == 1.0 for r in rolls)
    for rate in (0.2, 0.5):
        paid = [pay(r, Settings(seed=3, rate=rate)) for r in rolls]
        assert abs(sum(paid) / len(paid) - rate) < 0.03  # 4000 draws: 3 % is > 4 standard errors at 0.5
        # independent of correctness: the rate is the same on right and wrong rollouts
        right = [p for p, r in zip(paid, rolls) if r.correct]
        wrong = [p for p, r in zip(paid, rolls) if not r.correct]
        assert abs(sum(right) / len(right) - sum(wrong) / len(wrong)) < 0.05


def test_random_reward_is_keyed_by_seed_step_prompt_text_and_occurrence():
    r = roll()
    assert coin(Settings(seed=1), r) == coin(Settings(seed=1), roll())  # the same rollout, the same coin
    others = [roll(step=1), roll(pid="q"), roll(text="43"), roll(occurrence=1)]
    assert len({coin(Settings(seed=1), x) for x in [r, *others]}) == 5
    assert coin(Settings(seed=1), r) != coin(Settings(seed=2), r)
    assert 0.0 <= coin(Settings(), r) < 1.0
