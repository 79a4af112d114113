"""Sweep directory -> ``report.md`` (tables with 95 % intervals over seeds), CSVs, PNGs, and W&B.

    python -m harness.report outputs/demo

Also runs by itself when a multirun ends (the Hydra callback). The report is the ordered list of registered
sections (:mod:`harness.report.sections`, one module each). Runs are read through :mod:`harness.analysis.sweep`, so
every table groups runs by adapter, objective and every other swept setting; runs that failed or are
missing are listed, never dropped silently. The geometry analysis is cached per run, so reporting a sweep
again (or a resumed one) only analyzes the new runs.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from harness.analysis.sweep import load_sweep, per_run
from harness.core.store import atomic_write_text
from harness.report.base import Context, Section, ordered


def build_report(sweep_dir: Path | str, wandb_log: bool = True, analyze: bool = True) -> Path:
    """Write ``report.md`` (+ CSVs and PNGs under ``report/``) for a sweep dir and return its path
    (``analyze=False``: the caller has just analysed the sweep at the default settings, e.g. a pair study)."""
    from harness.analysis.geometry.analyze_run import analyze_sweep
    from harness.analysis.geometry.metrics import Settings

    sweep_dir = Path(sweep_dir)
    if analyze:
        analyze_sweep(sweep_dir, Settings())  # default settings; new runs only (cached per run)
    sweep = load_sweep(sweep_dir)
    if not sweep.runs:
        raise SystemExit(f"error: {sweep_dir} holds no runs (no */.hydra/config.yaml)")
    # Every file under report/ is from this build: the previous folder is set aside and removed at the end
    # (put back if the build itself fails), so no file of an older report stays beside the new ones.
    out_dir, previous = sweep_dir / "report", sweep_dir / "report.previous"
    shutil.rmtree(previous, ignore_errors=True)
    if out_dir.exists():
        out_dir.rename(previous)
    try:
        out_dir.mkdir()
        ctx = Context(sweep, out_dir)
        ctx.runs = per_run(sweep)
        parts = [part for sec in ordered() if (part := _render(sec, ctx))]
        for name, df in ctx.tables.items():
            df.to_csv(out_dir / f"{name}.csv", index=False)
        ctx.runs.to_csv(out_dir / "runs.csv", index=False)
        report = atomic_write_text(sweep_dir / "report.md", "\n".join(parts))
    except BaseException:
        if previous.exists():
            shutil.rmtree(out_dir, ignore_errors=True)
            previous.rename(out_dir)
        raise
    shutil.rmtree(previous, ignore_errors=True)
    if wandb_log:
        from harness.report.wandb import log_report

        log_report(sweep_dir, ctx.tables, ctx.figures, ctx.runs)
    return report


def _render(sec: Section, ctx: Context) -> str | None:
    """One section's markdown; a section that raises is named in its place and skipped (its tables and
    figures dropped), so one broken section does not cost the rest of the report."""
    tables, figures = set(ctx.tables), len(ctx.figures)
    head = f"## {sec.title}\n\n" if sec.title else ""
    try:
        body = sec.render(ctx)
    except Exception as exc:
        for name in set(ctx.tables) - tables:
            del ctx.tables[name]
        del ctx.figures[figures:]
        reason = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        print(f"[harness] report section {sec.key!r} failed and was skipped: {reason}", file=sys.stderr)
        title = head or f"## {sec.key}\n\n"
        return f"{title}*This section failed and was skipped: `{reason}`.*\n"
    return head + body.strip() + "\n" if body else None


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: python -m harness.report <sweep dir>", file=sys.stderr)
        raise SystemExit(2)
    path = Path(argv[0])
    if not path.is_dir():
        print(f"error: sweep dir {str(path)!r} does not exist", file=sys.stderr)
        raise SystemExit(2)
    print(f"[harness] report: {build_report(path)}")
