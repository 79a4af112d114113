"""Table 4: unlearnability (when the runs measured pass rates: ``passrate.enabled``)."""

from __future__ import annotations

from harness.report.base import Context, section


@section(50, "table4_unlearnability", "Table 4 — unlearnability", console=True)
def render(ctx: Context) -> str | None:
    from harness.analysis.unlearn import unlearnability_section

    text = unlearnability_section(ctx.sweep.path)
    if not text:
        return None
    lines = text.strip().splitlines()
    if lines and lines[0].startswith("#"):  # the section's own heading: the report numbers it
        lines = lines[1:]
    ctx.figures.extend(sorted(ctx.sweep.path.glob("unlearnability/*.png")))
    return "\n".join(lines)
