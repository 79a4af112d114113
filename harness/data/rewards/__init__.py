"""Rewards, registered by name: what an RLVR objective pays each rollout (``objective.reward=<name>``).

A reward is one module here whose function ``pay(rollout, settings) -> float`` is decorated with
``@register("<name>")``. It sees the rollout (text, gold answer, prompt id, step, occurrence) and whether the
task's verifier accepted it, so a spurious reward (random, format-only, negated) is computed beside the
verifier's verdict, never instead of it: the rollout ledger always records verifier correctness, so pass rates
and unlearnability stay measured against the truth whatever the run was paid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.core.registry import Registry


@dataclass(frozen=True)
class Rollout:
    """One scored completion: ``occurrence`` counts earlier identical (step, prompt id, text) rollouts, so two
    equal texts of one group are two draws of a random reward."""

    text: object
    answer: str
    prompt_id: str
    step: int
    occurrence: int
    correct: bool


@dataclass(frozen=True)
class Settings:
    """What a reward may depend on besides the rollout: the run's seed and ``objective.reward_rate``."""

    seed: int = 0
    rate: float = 0.5


Pay = Callable[[Rollout, Settings], float]
REWARDS: Registry[Pay] = Registry("objective.reward", __name__)
register = REWARDS.register


def available() -> list[str]:
    return REWARDS.names()
