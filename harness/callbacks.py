"""Hydra callbacks: when a multirun ends, a summary (statuses, total wall time) and the sweep report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from harness.record import read_run


def sweep_runs(sweep_dir: Path) -> list[tuple[Path, dict | None]]:
    """Job dirs of a sweep (those with a .hydra config) and their run.json (None if missing/corrupt)."""
    return [(p.parent.parent, read_run(p.parent.parent)) for p in sorted(sweep_dir.glob("*/.hydra/config.yaml"))]


class SweepSummary(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.t0 = time.time()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        runs = sweep_runs(sweep_dir)
        print(f"\n[harness] sweep {sweep_dir}: {len(runs)} runs", flush=True)
        for job, rec in runs:
            status = rec["status"] if rec else "missing"
            total = rec.get("timings", {}).get("total", 0) if rec else 0
            reason = f"  ({rec['reason']})" if rec and rec.get("reason") else ""
            print(f"  {status:8s} {total:7.1f}s  {job.name}{reason}", flush=True)
        print(f"[harness] training wall time {time.time() - getattr(self, 't0', time.time()):.1f}s", flush=True)
        if config.get("report", {}).get("on_sweep_end", True):
            from harness.report import build_report

            t = time.time()
            try:
                report = build_report(sweep_dir)
                print(f"[harness] report written in {time.time() - t:.1f}s", flush=True)
            except Exception as exc:  # the runs are safe on disk; `python -m harness.report` can retry
                print(f"[harness] report failed ({type(exc).__name__}: {exc}); retry with "
                      f"`python -m harness.report {sweep_dir}`", flush=True)
                report = None
        else:
            report = None
        print(f"[harness] total wall time {time.time() - getattr(self, 't0', time.time()):.1f}s", flush=True)
        if report is not None:
            print(f"[harness] report: {report}", flush=True)
