"""``verifier``: 1 when the task's exact-answer scorer accepts the rollout, else 0 (the default reward)."""

from __future__ import annotations

from harness.data.rewards import Rollout, Settings, register


@register("verifier")
def pay(rollout: Rollout, settings: Settings) -> float:
    return float(rollout.correct)
