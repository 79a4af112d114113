"""``negated``: 1 for a rollout the verifier rejects, 0 for one it accepts (*Spurious Rewards*' "incorrect"
reward: does RLVR improve a model even when it pays only wrong answers?)."""

from __future__ import annotations

from harness.data.rewards import Rollout, Settings, register


@register("negated")
def pay(rollout: Rollout, settings: Settings) -> float:
    return float(not rollout.correct)
