"""The claim registry and the verdict rules.

A :class:`Claim` states one published claim (id, the claim in a line, its source, the statistic, which runs
estimate it, the null or threshold, the source's own figure) and carries two functions (three where it can be
judged on released checkpoint pairs: ``pairs``, the estimate of a pair study): ``estimate`` reads a
sweep's measured artifacts into :class:`Part` estimates (each a statistic with its 95 % interval and the side
of its null the claim predicts), and ``rule`` turns them into a :class:`Result` with a verdict. The default
rule, :func:`all_parts`, applies :func:`judge` to every part: a part is *supported* when its interval lies
wholly on the predicted side of the null, *contradicted* when it lies wholly on the other side (or touches
the null from there), and *inconclusive at this scale* otherwise, always with the reason. Nothing in a
verdict is typed in by hand: it follows from the numbers and the rule beside the claim.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.core.registry import Registry

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive at this scale"
VERDICTS = (SUPPORTED, CONTRADICTED, INCONCLUSIVE)
MIN_SEEDS = 2  # an interval over seeds needs at least two; one seed is underpowered by definition


@dataclass
class Part:
    """One estimated statistic of a claim: estimate [lo, hi] over ``n`` units (seeds, or prompts where
    ``unit`` says so), its null, and the side the claim predicts (``"below"`` or ``"above"`` the null).
    ``needs`` names what the sweep lacks when nothing could be estimated."""

    name: str
    estimate: float = math.nan
    lo: float = math.nan
    hi: float = math.nan
    n: int = 0
    null: float = 0.0
    side: str = "below"
    unit: str = "seeds"
    needs: str | None = None
    runs: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def finite(self) -> bool:
        return all(math.isfinite(x) for x in (self.estimate, self.lo, self.hi))


@dataclass
class Result:
    """A claim's verdict with its evidence (the primary part is what the table and the forest plot show)."""

    verdict: str
    reason: str
    parts: list[Part]

    @property
    def primary(self) -> Part:
        return self.parts[0]

    @property
    def runs(self) -> list[str]:
        seen: dict[str, None] = {}
        for p in self.parts:
            seen.update(dict.fromkeys(p.runs))
        return list(seen)


def judge(part: Part, min_n: int = MIN_SEEDS) -> tuple[str, str]:
    """Verdict and reason of one part (see the module doc)."""
    if part.needs:
        return INCONCLUSIVE, f"needs: {part.needs}"
    if part.n < min_n:
        return INCONCLUSIVE, f"{part.name}: n = {part.n} {part.unit} (< {min_n}), no interval"
    if not part.finite:
        return INCONCLUSIVE, f"{part.name}: no finite estimate/interval"
    below = part.side == "below"
    ci = f"{part.name} {part.estimate:.3g} [{part.lo:.3g}, {part.hi:.3g}] vs {part.null:g}"
    if (part.hi < part.null) if below else (part.lo > part.null):
        return SUPPORTED, ci
    if (part.lo >= part.null) if below else (part.hi <= part.null):
        return CONTRADICTED, ci + f" (predicted {part.side})"
    return INCONCLUSIVE, ci + ": interval spans the null"


def combine(judged: list[tuple[str, str]]) -> tuple[str, str]:
    """Several parts of one claim: contradicted if any part is, supported only if every part is, else
    inconclusive; the reason lists the deciding parts."""
    if any(v == CONTRADICTED for v, _ in judged):
        return CONTRADICTED, "; ".join(r for v, r in judged if v == CONTRADICTED)
    if all(v == SUPPORTED for v, _ in judged):
        return SUPPORTED, "; ".join(r for _, r in judged)
    return INCONCLUSIVE, "; ".join(r for v, r in judged if v == INCONCLUSIVE)


def estimated(part: Part, min_n: int = MIN_SEEDS) -> bool:
    """Whether a part has an interval to judge (nothing missing, n ≥ ``min_n``, finite)."""
    return not part.needs and part.n >= min_n and part.finite


def margin_ci(part: Part, margin: float) -> str:
    """``name +0.010 [-0.020, +0.040] vs ±0.05``: an equivalence part's estimate beside its margin."""
    return f"{part.name} {part.estimate:+.3f} [{part.lo:+.3f}, {part.hi:+.3f}] vs ±{margin:g}"


def equivalent(part: Part, margin: float) -> tuple[str, str]:
    """An equivalence claim ("matches"): supported when the interval lies inside ±``margin``, contradicted when
    it lies wholly outside, inconclusive when it crosses a margin or nothing could be estimated."""
    if not estimated(part):
        return judge(part)
    ci = margin_ci(part, margin)
    if -margin < part.lo and part.hi < margin:
        return SUPPORTED, ci + ": inside the margin"
    if part.hi < -margin or part.lo > margin:
        return CONTRADICTED, ci + ": outside the margin"
    return INCONCLUSIVE, ci + ": interval crosses the margin"


def all_parts(parts: list[Part]) -> Result:
    """The default rule: :func:`judge` each part, :func:`combine` them."""
    verdict, reason = combine([judge(p) for p in parts])
    return Result(verdict, reason, parts)


@dataclass(frozen=True)
class Claim:
    """One claim of the field, how the harness estimates it, and the rule that judges it."""

    id: str
    claim: str
    source: str
    statistic: str
    runs: str  # which runs estimate it (through Sweep grouping/pairing)
    null: str  # the null or threshold, in words
    source_figure: str  # the source's own numbers, labelled where they are not the paper's
    estimate: Callable  # (ClaimData) -> list[Part]
    rule: Callable[[list[Part]], Result] = all_parts
    order: int = 0
    # (ClaimData of one group of a pair study) -> list[Part]: the estimate on released checkpoint pairs, pairs
    # in place of seeds; None: the claim needs what only training runs measure (accuracy, eNTK, pass@k, KL)
    pairs: Callable | None = None


# Every module of harness.claims but these holds claims (a new claim is one more module).
REGISTRY: Registry[Claim] = Registry("claim", "harness.claims", skip=("base", "data", "table"))
CLAIMS = REGISTRY.entries  # id -> Claim, filled as the claim modules are imported


def register(claim: Claim) -> Claim:
    """Add a claim to the registry (ids are unique)."""
    return REGISTRY.register(claim.id)(claim)


def ordered() -> list[Claim]:
    """Every registered claim in table order (the claim modules are imported first)."""
    return sorted(REGISTRY.values(), key=lambda c: (c.order, c.id))
