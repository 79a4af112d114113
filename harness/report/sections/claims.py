"""The Claims section: every registered claim (:mod:`harness.claims`) judged on this sweep, with the forest
plot; the same table as ``python -m harness.claims``."""

from __future__ import annotations

from harness.report.base import Context, section


@section(65, "claims", "Claims — verdicts from rules applied to the measured numbers")
def render(ctx: Context) -> str | None:
    from harness.claims.table import write_claims

    if ctx.sweep.done.empty:
        return None
    df, text, plot = write_claims(ctx.sweep, ctx.out_dir)
    ctx.tables["claims"] = df
    if plot:
        ctx.figures.append(plot)
        text = text.replace(f"]({plot.name})", f"](report/{plot.name})")
    return text
