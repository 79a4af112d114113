"""Hydra callbacks: when a multirun ends, a summary (statuses, total wall time), the sweep report, and an exit
code that says whether every run succeeded."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from harness.analysis.sweep import SKIPPED, run_dirs


class SweepSummary(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.t0 = time.time()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from harness.core import dist

        if not dist.is_main():  # one report per sweep: the main process's (the others' sweep dir is throwaway)
            return
        sweep_dir = Path(config.hydra.sweep.dir)
        runs = run_dirs(sweep_dir)
        t0 = getattr(self, "t0", time.time())
        print(f"\n[harness] sweep {sweep_dir}: {len(runs)} runs", flush=True)
        for run in runs:
            total = (run.record or {}).get("timings", {}).get("total", 0)
            reason = f"  ({run.reason})" if run.reason else ""
            print(f"  {run.status:8s} {total:7.1f}s  {run.name}{reason}", flush=True)
        print(f"[harness] training wall time {time.time() - t0:.1f}s", flush=True)
        report = None
        if config.get("report", {}).get("on_sweep_end", True):
            from harness.report import build_report

            t = time.time()
            try:
                report = build_report(sweep_dir)
                print(f"[harness] report written in {time.time() - t:.1f}s", flush=True)
            except Exception as exc:  # the runs are safe on disk; `python -m harness.report` can retry
                print(f"[harness] report failed ({type(exc).__name__}: {exc}); retry with "
                      f"`python -m harness.report {sweep_dir}`", flush=True)
        print(f"[harness] total wall time {time.time() - t0:.1f}s", flush=True)
        if report is not None:
            print(f"[harness] report: {report}", flush=True)
        failed = [r for r in runs if r.status not in ("done", SKIPPED)]
        if failed:  # the sweep went on past them; the exit code says it was not clean
            print(f"[harness] {len(failed)} of {len(runs)} runs not done: "
                  + "; ".join(f"{r.name} ({r.status}: {r.reason})" for r in failed), file=sys.stderr, flush=True)
            raise SystemExit(1)
