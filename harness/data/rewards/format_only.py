"""``format``: 1 when the rollout states a readable final answer, right or wrong (*Spurious Rewards*' format
reward, which paid any ``\\boxed{}``): the scorer's own reading (:mod:`harness.data.tasks.scoring`) finds exactly
one standalone number in the final-answer segment for a numeric gold, or any non-empty segment otherwise.
Paying the format alone asks whether RLVR's gain is the answer format it teaches."""

from __future__ import annotations

from harness.data.rewards import Rollout, Settings, register
from harness.data.tasks.scoring import answer_number, extract, read_number


def has_answer(text: object, gold: str) -> bool:
    """Whether ``text`` states an answer the scorer can read against a gold like ``gold``."""
    _, segment = extract(text)
    if not segment:
        return False
    return answer_number(segment) is not None if read_number(str(gold)) is not None else True


@register("format")
def pay(rollout: Rollout, settings: Settings) -> float:
    return float(has_answer(rollout.text, rollout.answer))
