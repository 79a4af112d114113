"""One run on N processes: who this process is, the process group, and the few ways ranks coordinate.

The harness runs the same pipeline in every process that a launcher starts (``accelerate launch`` /
``torchrun``, or SLURM / submitit tasks with ``tasks_per_node > 1``). Every rank trains (and takes part in
any collective); only the main process (global rank 0) writes: artifacts, caches, W&B, the analyzer and the
report. The rules, each one function here:

- :func:`setup` starts the process group once (gloo on CPU, NCCL on GPUs) with a timeout that bounds every
  collective (``dist.timeout_s``), after putting each rank on its own GPU (``cuda:<local rank>``);
- :func:`main_first` runs a block on the main process first (it builds a cache), then on the others (they
  load it); :func:`main_only` runs a block on the main process while the others wait for it;
- failures: the rank that raises publishes its reason in the launcher's key-value store and aborts the
  process group, so every other rank leaves whatever collective it is in at once (gloo: "connection closed by
  peer"), reads the reason, and records the same failure; :func:`recover` then starts a fresh process group so
  the next job of a sweep runs (``RankFailed`` is what the other ranks raise);
- :func:`export_submitit_env` turns a submitit task (SLURM or local) into a torch.distributed rank.

Before :func:`setup` the rank queries read the launcher's environment (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``), so they are right before any process group exists. A leaf module: torch is imported lazily.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import time
from collections.abc import Iterator
from typing import Any

#: Default bound on one collective (seconds): a rank that stops answering fails the run after this long.
#: torch's own default for gloo and NCCL groups is 30 min; a main-only stage (lm-eval, a cache build) does not
#: count against it, since the other ranks wait on the store, not in a collective.
DEFAULT_TIMEOUT_S = 1800

_STATE: dict[str, Any] = {"store": None, "generation": 0, "job": 0, "timeout_s": DEFAULT_TIMEOUT_S,
                          # True while the main process runs a main-only block: the others wait on the store, so a
                          # failure there needs no abort (the process group stays usable)
                          "others_waiting": False, "aborted": False}


class RankFailed(RuntimeError):
    """Raised on a rank whose run was failed by another rank; the message is that rank's reason."""


# --- who am I ------------------------------------------------------------------------------------------------


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def active() -> bool:
    """True when this process is one of several ranks of one run."""
    return world_size() > 1


def is_main() -> bool:
    """The one process that writes (global rank 0; every process of a single-process run)."""
    return rank() == 0


def export_submitit_env() -> None:
    """Inside a submitit task of a job with several tasks (SLURM ``tasks_per_node``/``nodes``, or the local
    executor), set the torch.distributed variables from submitit's job environment: rank, world size, local
    rank, and the first node as the rendezvous address on a port derived from the job id (one port per job,
    so two jobs on one node do not collide)."""
    if "RANK" in os.environ or not any(k.startswith(("SUBMITIT_", "SLURM_JOB_ID")) for k in os.environ):
        return
    try:
        import submitit

        env = submitit.JobEnvironment()
    except (ImportError, RuntimeError):
        return
    if env.num_tasks <= 1:
        return
    job = str(env.job_id).split("_")[0]
    port = 20000 + int("".join(c for c in job if c.isdigit()) or "0") % 20000
    os.environ.update(RANK=str(env.global_rank), WORLD_SIZE=str(env.num_tasks), LOCAL_RANK=str(env.local_rank),
                      LOCAL_WORLD_SIZE=str(env.num_tasks // max(1, env.num_nodes)),
                      MASTER_ADDR=env.hostnames[0] if env.hostnames else "127.0.0.1",
                      MASTER_PORT=os.environ.get("MASTER_PORT", str(port)))


def device(requested: str = "auto") -> str:
    """The device this rank computes on: ``auto`` is this rank's own GPU (``cuda:<local rank>``) when CUDA is
    present, else the CPU; an explicit ``cuda`` becomes this rank's GPU too."""
    import torch

    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and active():
        return f"cuda:{local_rank()}"
    return requested


# --- the process group -------------------------------------------------------------------------------------


def setup(timeout_s: float | None = None) -> None:
    """Start the process group of this run (once per process; a no-op for a single process)."""
    import torch
    import torch.distributed as tdist

    export_submitit_env()
    if timeout_s:
        _STATE["timeout_s"] = float(timeout_s)
    if not active() or tdist.is_initialized():
        if active() and _STATE["store"] is None:
            _STATE["store"] = tdist.distributed_c10d._get_default_store()
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank())  # before anything lands on cuda:0 of every rank
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    tdist.init_process_group(backend, timeout=datetime.timedelta(seconds=_STATE["timeout_s"]))
    # The launcher's key-value store (torchrun's agent store / the rendezvous TCPStore): it outlives an aborted
    # process group, so it carries failure reasons and is the base of the next group.
    _STATE["store"] = tdist.distributed_c10d._get_default_store()


def _store():
    import torch.distributed as tdist

    return tdist.PrefixStore("harness", _STATE["store"])


def recover() -> None:
    """After a failed job whose process group was aborted: start a fresh one, so the next job of the sweep
    starts clean. Every rank of the failed job calls this (each aborted: a failure in a collective reaches all)."""
    import torch
    import torch.distributed as tdist

    if not active() or not _STATE["aborted"]:
        return
    _STATE["aborted"] = False
    import gc

    with contextlib.suppress(Exception):
        if tdist.is_initialized():
            tdist.destroy_process_group()
    gc.collect()  # the old group's last references (a DDP reducer in a cycle): freeing it closes its connections
    _STATE["generation"] += 1
    # Meet on the store first, with room for a rank still stuck in a collective of the old group until the
    # collective timeout ends it (gloo under FSDP: see docs/distributed.md); then the group starts at once.
    meet = f"recover{_STATE['generation']}"
    store = _store()
    store.set(f"{meet}/{rank()}", "1")
    store.wait([f"{meet}/{r}" for r in range(world_size())], datetime.timedelta(seconds=2 * _STATE["timeout_s"] + 60))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    tdist.init_process_group(backend, store=tdist.PrefixStore(f"pg{_STATE['generation']}", _STATE["store"]),
                             rank=rank(), world_size=world_size(),
                             timeout=datetime.timedelta(seconds=_STATE["timeout_s"]))


def begin_job() -> None:
    """Every rank calls this at the start of each job: keys in the store are per job."""
    _STATE["job"] += 1
    _STATE["others_waiting"] = False


def _key(name: str) -> str:
    return f"job{_STATE['job']}/{name}"


# --- collectives -------------------------------------------------------------------------------------------


def barrier() -> None:
    import torch.distributed as tdist

    if active():
        tdist.barrier()


def broadcast(obj: Any) -> Any:
    """The main process's ``obj`` on every rank (picklable objects)."""
    import torch.distributed as tdist

    if not active():
        return obj
    box = [obj]
    tdist.broadcast_object_list(box, src=0)
    return box[0]


def gather(obj: Any) -> list[Any] | None:
    """Every rank's ``obj``, in rank order, on the main process (None on the others)."""
    import torch.distributed as tdist

    if not active():
        return [obj]
    out: list[Any] | None = [None] * world_size() if is_main() else None
    tdist.gather_object(obj, out, dst=0)
    return out


# --- failures ----------------------------------------------------------------------------------------------


def failure() -> str | None:
    """The reason another rank published for the current job, if any."""
    if not active() or _STATE["store"] is None:
        return None
    store = _store()
    key = _key("fail")
    if store.check([key]):
        return store.get(key).decode()
    return None


def fail(exc: BaseException) -> str:
    """This rank caught ``exc`` during a job: the reason to record on every rank. If another rank failed first
    (``exc`` is then usually its echo, e.g. a closed connection), that rank's reason; else this rank's, which is
    published for the others. The process group is aborted so that no rank waits in a collective, unless no rank
    can be in one: the main process failed in a main-only block (the others wait on the store), or this rank
    learnt of the failure while waiting there."""
    own = f"{type(exc).__name__}: {exc}" if not isinstance(exc, RankFailed) else str(exc)
    if not active() or _STATE["store"] is None:
        return own
    remote = failure()
    if remote is None and not isinstance(exc, RankFailed):
        reason = f"rank {rank()}: {own}"
        store = _store()
        # the first rank to fail names the reason; a later one (an echo) keeps it
        stored = store.compare_set(_key("fail"), "", reason).decode()
        remote = stored if stored else reason
    if not (isinstance(exc, RankFailed) or (is_main() and _STATE["others_waiting"])):
        _abort()
    return remote or own


def _abort() -> None:
    import torch.distributed as tdist

    if not tdist.is_initialized():
        return
    _STATE["aborted"] = True
    try:  # NCCL: pending collectives end at once; gloo: connections close once the group is freed (recover)
        tdist.distributed_c10d._abort_process_group()
    except Exception:  # an older torch or a backend without abort: a plain destroy (peers time out)
        with contextlib.suppress(Exception):
            tdist.destroy_process_group()


# --- main-process sections ---------------------------------------------------------------------------------


def _wait(key: str, poll_s: float = 0.2) -> None:
    """Wait until the main process sets ``key`` or some rank publishes a failure (no time bound: the main
    process is working, and a dead one ends the launch)."""
    store = _store()
    while True:
        if store.check([_key(key)]):
            return
        reason = failure()
        if reason is not None:
            raise RankFailed(reason)
        time.sleep(poll_s)


@contextlib.contextmanager
def main_only(name: str) -> Iterator[bool]:
    """``with main_only("post") as mine: if mine: ...``: the main process runs the block; the others wait (on
    the store, not in a collective, so a long stage is not bounded by the collective timeout) and skip it."""
    if not active():
        yield True
        return
    if is_main():
        _STATE["others_waiting"] = True
        yield True
        _STATE["others_waiting"] = False
        _store().set(_key(f"done/{name}"), "1")
    else:
        _wait(f"done/{name}")
        yield False


@contextlib.contextmanager
def main_first(name: str) -> Iterator[None]:
    """The block runs on the main process first (it builds caches), then on every other rank (cache hits)."""
    if not active():
        yield
        return
    if is_main():
        _STATE["others_waiting"] = True
        yield
        _STATE["others_waiting"] = False
        _store().set(_key(f"first/{name}"), "1")
    else:
        _wait(f"first/{name}")
        yield


def single_process_env() -> dict[str, str]:
    """The environment for a child process that must not join this run's process group (a cache build that
    trains, e.g. the format warm-up): the launcher's rank variables removed, this rank's GPU only."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK",
                        "ROLE_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID",
                        "TORCHELASTIC_USE_AGENT_STORE", "TORCHELASTIC_RESTART_COUNT", "TORCHELASTIC_MAX_RESTARTS")
           and not k.startswith(("ACCELERATE_", "FSDP_", "SUBMITIT_"))}
    if active():
        visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d]
        env["CUDA_VISIBLE_DEVICES"] = visible[local_rank()] if local_rank() < len(visible) else str(local_rank())
    return env


# --- the same experiment at any world size -----------------------------------------------------------------


def per_device(global_size: int, grad_accum: int = 1) -> int:
    """The per-device batch of a global batch (summed over processes and accumulation steps per optimizer step).
    Config batch sizes are global, so a config is the same experiment on 1 or N processes."""
    n = world_size() * max(1, int(grad_accum))
    if global_size % n:
        raise ValueError(f"a global batch of {global_size} does not split over {world_size()} process(es) x "
                         f"{grad_accum} accumulation step(s)")
    return global_size // n
