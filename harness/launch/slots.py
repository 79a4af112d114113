"""A cap on jobs that run at once on one machine, for launchers that start every job of a sweep together.

submitit's local executor starts all jobs of a sweep at once: 8 SmolLM2 jobs on 2 cores thrash and can run
the machine out of memory (seen here: 18 of 23 GiB after 6 min, none past its first step). Each job takes one
of N slot locks in the sweep dir and waits for a free one. Off for the basic launcher (sequential anyway) and
for SLURM (one job per allocation; a shared sweep dir must not serialise a cluster).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path


def default_slots(launcher_target: str | None) -> int | None:
    """One job per 2 cores under submitit's local launcher; no cap elsewhere."""
    if launcher_target and launcher_target.endswith("submitit_launcher.submitit_launcher.LocalLauncher"):
        return max(1, (os.cpu_count() or 2) // 2)
    return None


@contextlib.contextmanager
def job_slot(sweep_dir: Path, slots: int | None) -> Iterator[None]:
    """Hold one of ``slots`` locks under ``sweep_dir/.slots`` for the duration of the job."""
    if not slots:
        yield
        return
    folder = sweep_dir / ".slots"
    folder.mkdir(parents=True, exist_ok=True)
    waited = False
    while True:
        for i in range(slots):
            fh = open(folder / f"slot-{i}.lock", "w")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                continue
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
                fh.close()
            return
        if not waited:
            print(f"[harness] waiting for one of {slots} job slot(s) on this machine", flush=True)
            waited = True
        time.sleep(2)


def threads_per_job(slots: int | None, cores: int | None = None) -> int | None:
    """Torch threads for each of ``slots`` jobs sharing this machine's cores (None: leave torch's default).

    Jobs that share cores must not each start one thread per core (N jobs x all cores thrash); split evenly, at
    least one each. On 2 cores two 1-thread jobs matched one 2-thread job's throughput (sweeps/lr_search.md).
    """
    if not slots:
        return None
    return max(1, (cores or os.cpu_count() or 1) // slots)
