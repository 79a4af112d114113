"""Runs that failed or are missing: listed with their reason, never dropped silently."""

from __future__ import annotations

from harness.report.base import Context, markdown, section


@section(5, "excluded", "Runs not included")
def excluded(ctx: Context) -> str | None:
    bad = ctx.sweep.table[ctx.sweep.table["status"] != "done"]
    return None if bad.empty else markdown(bad[["run", "status", "reason"]])
