"""The report's parts: sections that register themselves in order, the context they share, and cell
formatting.

A section is one module in :mod:`harness.report.sections` that decorates a function with :func:`section`:
its order, a key (names its CSV), and its own numbered title. The function gets the :class:`Context` and
returns the section's markdown body (or None when the sweep has nothing for it); tables it adds to
``ctx.tables`` are written as CSV and logged to W&B, figures it adds to ``ctx.figures`` are embedded.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness.analysis.sweep import Sweep
from harness.core.registry import Registry
from harness.core.stats import numeric, seed_mean  # noqa: F401 (numeric: sections' cell helper)


@dataclass
class Context:
    """What every section reads (the sweep) and what they hand on (tables, figures)."""

    sweep: Sweep
    out_dir: Path
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)
    # Per-run values computed once and shared between sections (e.g. the accuracy columns of Table 1).
    runs: pd.DataFrame | None = None


@dataclass(frozen=True)
class Section:
    order: int
    key: str
    title: str | None
    render: Callable[[Context], str | None]
    console: bool = False  # also printed by ``harness analyze <sweep>``, after the geometry


REGISTRY: Registry[Section] = Registry("report section", "harness.report.sections")

# The marker of a figure whose 95 % interval includes 0 (or its null), or that has no interval at all.
NOT_DISTINGUISHABLE = "n.d."


def section(order: int, key: str, title: str | None = None, console: bool = False) -> Callable:
    """Register a report section: ``@section(30, "table1", "Table 1 — ...")`` (``console``: the analyzer prints
    it too, after a sweep's geometry)."""

    def deco(fn: Callable[[Context], str | None]) -> Callable[[Context], str | None]:
        REGISTRY.register(key)(Section(order, key, title, fn, console))
        return fn

    return deco


def ordered() -> list[Section]:
    """Every registered section, in report order (the section modules are imported first)."""
    return sorted(REGISTRY.values(), key=lambda s: (s.order, s.key))


# --- cells -----------------------------------------------------------------------------------------------


def seed_cell(values, fmt: str = "{:.3g}") -> str:
    """Mean over seeds with its 95 % t-interval half-width: ``0.12 ± 0.03``; one seed shows the value alone."""
    s = seed_mean(numeric(values))
    if s.n == 0:
        return "–"
    if s.n == 1 or not math.isfinite(s.hi):
        return fmt.format(s.estimate)
    half = (s.hi - s.lo) / 2
    half = 0.0 if half <= 1e-9 * abs(s.estimate) else half  # rounding noise of identical values
    return f"{fmt.format(s.estimate)} ± {fmt.replace('+', '').format(half)}"


def markdown(df: pd.DataFrame) -> str:
    """A markdown table (no extra dependency)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(str(r[c]) for c in cols) + " |")
    return "\n".join(lines)


def group_row(values: dict, rows: pd.DataFrame) -> dict:
    """The leading cells of a per-group row: the group keys and the number of seeds."""
    return {**values, "n": len(rows)}
