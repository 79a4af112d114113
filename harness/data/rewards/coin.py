"""``random``: 1 with probability ``objective.reward_rate``, whatever the rollout says (*Spurious Rewards*,
arXiv 2506.10947, paid Bernoulli(0.5) rewards).

The coin is a hash of (seed, step, prompt id, text, occurrence), not a draw from a generator: the same run
pays the same rollouts on any number of processes and after a restart, and the reward stays independent of
the rollout's correctness. (On N processes ``occurrence`` counts within a process's slice of the batch, so
identical texts of one group split across processes may draw differently than on one process.)
"""

from __future__ import annotations

import hashlib

from harness.data.rewards import Rollout, Settings, register

_SCALE = float(2**64)


def coin(settings: Settings, rollout: Rollout) -> float:
    """A uniform number in [0, 1) fixed by the rollout's key and the seed."""
    key = f"{settings.seed}\x1f{rollout.step}\x1f{rollout.prompt_id}\x1f{rollout.text}\x1f{rollout.occurrence}"
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") / _SCALE


@register("random")
def pay(rollout: Rollout, settings: Settings) -> float:
    return float(coin(settings, rollout) < settings.rate)
