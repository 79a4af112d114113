"""Classes of training prompts (DESIGN.md, "Unlearnability"; the paper's released classification code).

Per run, with pass@1 at start p0 (at the base), at end p1 (after training), and the correct rollouts seen
during training c (RLVR: from the ledger; SFT: the gold answer counts as seen):

- easy:            p0 > τ
- learnable:       p0 ≤ τ and p1 > τ
- unlearnable:     p0 ≤ τ, p1 ≤ τ and c ≥ 1
- never-rewarded:  p0 ≤ τ, p1 ≤ τ and c = 0

learnable / unlearnable / never-rewarded partition the hard set (p0 ≤ τ). A hard prompt learned without a
single correct rollout of its own counts as learnable (it was learned through the other prompts).
Across seeds a prompt gets a class only when every seed agrees (unlearnable = unlearnable in every seed);
otherwise it is ``mixed``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

EASY, LEARNABLE, UNLEARNABLE, NEVER, MIXED, UNKNOWN = (
    "easy", "learnable", "unlearnable", "never-rewarded", "mixed", "unknown")
HARD_CLASSES = (LEARNABLE, UNLEARNABLE, NEVER)
CLASSES = (EASY, *HARD_CLASSES)


def classify(pass_start: float, pass_end: float, correct_seen: float, tau: float = 0.1) -> str:
    """Class of one prompt in one run (``unknown`` when a pass rate is missing)."""
    if pass_start is None or pass_end is None or math.isnan(pass_start) or math.isnan(pass_end):
        return UNKNOWN
    if pass_start > tau:
        return EASY
    if pass_end > tau:
        return LEARNABLE
    return UNLEARNABLE if (correct_seen or 0) > 0 else NEVER


def across_seeds(classes: Iterable[str]) -> str:
    """The class every seed agrees on, else ``mixed``."""
    seen = set(classes)
    if len(seen) == 1:
        return seen.pop()
    return MIXED if seen else UNKNOWN


def hard_fractions(classes: Sequence[str]) -> dict[str, float]:
    """Number of hard prompts and the fraction of them in each hard class (and ``mixed`` across seeds)."""
    hard = [c for c in classes if c not in (EASY, UNKNOWN)]
    out: dict[str, float] = {"n": float(len(classes)), "hard": float(len(hard))}
    for c in (*HARD_CLASSES, MIXED):
        out[c] = sum(x == c for x in hard) / len(hard) if hard else float("nan")
    return out


def spread(values: Sequence[float]) -> tuple[float, float, float, float]:
    """(mean, sample std, min, max) of per-seed values, ignoring NaN; std is 0 for a single seed."""
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=float)
    if len(v) == 0:
        return (math.nan,) * 4
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, float(v.min()), float(v.max())
