"""One run on N processes is the same experiment, written once (issue 17).

Real launches on this CPU: ``accelerate launch --multi_gpu --num_processes 2`` (torchrun with gloo), against the
same sweep on one process. Every adapter under SFT, GRPO and RLOO: one set of artifacts, ``run.json`` records the
world size and the global batch, one log row per step, ΔW equal to the single-process ΔW of the same global batch,
the same rollout ledger. FSDP2 (transformers' load-time sharding, ``dist.fsdp=true``) for full and sparse. A
cold-cache sweep with a failure injected on rank 1. Timing-free: every assertion is about results.

The single-process reference runs on one thread, like every torchrun worker (OMP_NUM_THREADS=1): PiSSA's
initial SVD alone differs by 9e-5 (relative ΔW) between 1 and 2 threads, more than between 1 and 2 processes.

How equal is equal: 2 processes compute the same global batch in two halves, and Adam's first steps
(g / (sqrt(v) + eps)) turn the rounding of a reordered sum into visible differences wherever a gradient entry is
near eps. So the reference for "equal" is measured in the same test, on the same machine: one process that
splits the same global batch into 2 accumulation steps of the per-device size (``objective.grad_accum=2``).

- SFT: 2 processes are bit-identical to that accumulation run, for every adapter (both halve the same sums).
- Every run: ΔW of 2 processes is within ``2 F`` (relative) of the single-process ΔW, where F is the largest
  change that the 2-step accumulation alone makes to any run of the sweep (F itself must stay under 1e-3: a
  run trained on half the batch, the bug of issue 17, differs by 0.53-0.83).

Measured here (warmed tiny model, 2 steps): F = 1.0e-4 (LoRA SFT); 2 processes vs 1: SFT 0 to 1.0e-4, RL
2.7e-6 to 5.5e-5; FSDP2 bit-identical to DDP. The issue's 1e-5 is not reachable for LoRA-family SFT, whose
accumulation floor alone is 2.7e-5 to 1.0e-4 (docs/distributed.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import ROOT, warm_digits, write_digits

pytestmark = pytest.mark.integration  # real launches: see pyproject's marker

ADAPTERS = ("full", "lora", "pissa", "milora", "sparse")
OBJECTIVES = ("sft", "rlvr", "rloo")
COMMON = ["model=tiny", "logger=none", "entk.enabled=false", "task=jsonl", "task.path=digits.jsonl",
          "task.n_train=8", "task.n_test=2", *warm_digits(10), "objective.steps=2",
          # RL: 4 prompts x 16 completions a step (keys absent from sft's config, hence ++)
          "++objective.prompts_per_step=4", "++objective.num_generations=16"]
MIN_TOL = 1e-6  # the tolerance when the accumulation floor happens to be smaller (e.g. exactly 0)
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]


def launch(work: Path, *args: str, nproc: int = 1, cache: Path | None = None, timeout: int = 900,
           **env: str) -> subprocess.CompletedProcess:
    """``python -m harness.run ARGS`` on one process, or under accelerate on two, outputs in ``work/out``."""
    e = {**os.environ, "HARNESS_OUT": str(work / "out"), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **env}
    if cache is not None:
        e["HARNESS_CACHE"] = str(cache)
    head = [*ACCELERATE, "-m", "harness.launch.run"] if nproc > 1 else [sys.executable, "-m", "harness.launch.run"]
    return subprocess.run([*head, *args], capture_output=True, text=True, timeout=timeout, env=e, cwd=work)


def runs(sweep: Path) -> dict[tuple[str, str], tuple[Path, dict]]:
    """(adapter, objective) -> (job dir, run.json) of a sweep dir."""
    out = {}
    for p in sweep.glob("*/run.json"):
        rec = json.loads(p.read_text())
        out[(rec["adapter"], rec["objective"])] = (p.parent, rec)
    return out


def rel_diff(a: Path, b: Path) -> tuple[float, float]:
    """(‖ΔW_a − ΔW_b‖ / ‖ΔW_a‖, ‖ΔW_a‖) over every stored matrix."""
    x, y = load_file(str(a / "delta.safetensors")), load_file(str(b / "delta.safetensors"))
    assert set(x) == set(y)
    num = sum(float((x[k] - y[k]).double().pow(2).sum()) for k in x) ** 0.5
    den = sum(float(x[k].double().pow(2).sum()) for k in x) ** 0.5
    return num / den, den


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("dist")
    write_digits(work / "digits.jsonl", 10)
    return work


def _sweep(work: Path, name: str, *extra: str, nproc: int = 1) -> subprocess.CompletedProcess:
    r = launch(work, "-m", *COMMON, f"adapter={','.join(ADAPTERS)}", f"objective={','.join(OBJECTIVES)}",
               f"name={name}", *extra, nproc=nproc)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-4000:])
    return r


@pytest.fixture(scope="module")
def single(work):
    _sweep(work, "single", "eval.enabled=false", "report.on_sweep_end=false")
    return runs(work / "out" / "single")


@pytest.fixture(scope="module")
def accum(work):
    """One process, the same global batch in 2 accumulation steps of the per-device batch of 2 processes."""
    _sweep(work, "accum", "++objective.grad_accum=2", "eval.enabled=false", "report.on_sweep_end=false")
    return runs(work / "out" / "accum")


@pytest.fixture(scope="module")
def tol(single, accum) -> float:
    """2 F, F = the largest relative ΔW change the 2-step accumulation alone makes (see the module docstring)."""
    floor = max(rel_diff(single[k][0], accum[k][0])[0] for k in single)
    assert floor < 1e-3, f"accumulating the same batch in 2 steps moved ΔW by {floor:.2e}: not rounding"
    return max(2 * floor, MIN_TOL)


@pytest.fixture(scope="module")
def ddp(work):
    # lm-eval and the sweep report on: both must run on the main process only
    r = _sweep(work, "ddp", nproc=2)
    return runs(work / "out" / "ddp"), r.stdout + r.stderr


@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_two_processes_are_the_single_process_experiment(single, accum, tol, ddp, adapter, objective):
    (ref, ref_rec), (job, rec) = single[(adapter, objective)], ddp[0][(adapter, objective)]
    assert rec["status"] == "done", rec.get("reason")
    d = rec["distributed"]
    assert d["world_size"] == 2 and d["engine"] == "DDP" and d["backend"] == "gloo" and len(d["devices"]) == 2
    assert d["mixed_precision"] == "no"
    assert rec["parameters"] == ref_rec["parameters"] and 0 < rec["parameters"]["trainable"] <= rec["parameters"]["total"]
    # the config's batch is global: the same on 1 and 2 processes, split in half per device
    assert d["global_batch"] == ref_rec["distributed"]["global_batch"] == 2 * d["per_device_batch"]
    assert d["global_batch"] == (8 if objective == "sft" else 64)
    logged = [json.loads(line) for line in (job / "train_log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in logged if "loss" in row] == [1, 2]  # one row per step, not one per rank
    rel, norm = rel_diff(ref, job)
    assert norm > 0  # the runs learnt something: equality is not 0 == 0
    assert rel <= tol, f"{adapter}/{objective}: ΔW differs by {rel:.2e} (relative) from the single-process run"
    if objective == "sft":  # the same halves of the same sums as one process accumulating 2 steps: bit-identical
        assert rel_diff(accum[(adapter, objective)][0], job)[0] == 0.0
    if objective != "sft":
        # every rank's rollouts, in the order one process saw them: the same ledger and kept rollouts
        assert (job / "ledger.csv").read_text() == (ref / "ledger.csv").read_text()
        assert (job / "correct_rollouts.jsonl").read_text() == (ref / "correct_rollouts.jsonl").read_text()
        assert len({line.split(",")[1] for line in (job / "ledger.csv").read_text().splitlines()[1:]}) == 8
    ev = json.loads((job / "eval.json").read_text())  # lm-eval ran (on the main process) and was written
    assert set(ev["tasks"]) >= {"id"}


def test_two_processes_write_once(ddp, work):
    done, log = ddp
    assert len(done) == len(ADAPTERS) * len(OBJECTIVES)
    for job, _ in done.values():
        assert log.count(f"[harness] run {job}") == 1  # one process announces (and writes) each run
    assert (work / "out" / "ddp" / "report.md").is_file()
    assert log.count("[harness] report written") == 1


def _sparse_masks(seed: int = 0) -> dict[str, torch.Tensor]:
    """The masks a sparse run of ``COMMON`` builds (the same adapter code, on the same warmed base, which the
    ``single`` sweep has cached)."""
    from harness.data.models import load_model
    from harness.train.adapters import build_adapter
    from harness.train.warmup import resolve_base
    from tests.conftest import compose

    cfg = compose("adapter=sparse", *(o for o in COMMON if o.startswith(("model", "+model", "~model"))))
    model, _ = load_model(resolve_base(cfg.model))
    adapter = build_adapter(cfg.adapter, seed=seed)
    adapter.prepare(model)
    return adapter.masks


def test_fsdp_is_the_single_process_experiment_and_keeps_sparse_masks(single, tol, work):
    r = launch(work, "-m", *COMMON, "adapter=full,sparse", "objective=sft,rlvr", "dist.fsdp=true",
               "eval.enabled=false", "report.on_sweep_end=false", "name=fsdp", nproc=2)
    assert r.returncode == 0, r.stderr[-4000:]
    fsdp = runs(work / "out" / "fsdp")
    assert len(fsdp) == 4
    masks = _sparse_masks()
    for key, (job, rec) in fsdp.items():
        assert rec["status"] == "done" and rec["distributed"]["engine"] == "FSDP2", rec
        rel, norm = rel_diff(single[key][0], job)
        assert norm > 0 and rel <= tol, f"{key}: {rel:.2e}"
        if key[0] == "sparse":
            delta = load_file(str(job / "delta.safetensors"))
            for name, mask in masks.items():
                assert torch.count_nonzero(delta[name][~mask]) == 0  # outside the mask: bit-identical to W0
                assert torch.count_nonzero(delta[name][mask]) > 0


def test_cold_cache_sweep_with_a_failing_rank(work, tmp_path):
    """From an empty cache (the warm-up is built once, outside the process group): no deadlock; a failure
    injected on rank 1 in one job fails that job on both ranks with rank 1's reason; the others are done; one
    report."""
    cache = tmp_path / "cold-cache"
    r = launch(work, "-m", *COMMON[:-2], "model.warmup.enabled=true", "adapter=full,lora", "objective=sft,rlvr",
               "fault.rank=1", "fault.stage=train", 'fault.job=["adapter=lora","objective=rlvr"]', "name=cold",
               nproc=2, cache=cache, timeout=600)
    assert r.returncode == 1, r.stderr[-3000:]  # a run failed: the sweep says so in its exit code
    done = runs(work / "out" / "cold")
    assert len(done) == 4
    status = {k: rec["status"] for k, (_, rec) in done.items()}
    assert status == {("full", "sft"): "done", ("full", "rlvr"): "done", ("lora", "sft"): "done",
                      ("lora", "rlvr"): "failed"}
    job, rec = done[("lora", "rlvr")]
    assert rec["reason"].startswith("rank 1: InjectedFault")
    assert "run failed: rank 1" in (job / "error.txt").read_text()  # rank 0's traceback, rank 1's reason
    assert len(list(cache.glob("models/*-warm-*/warmup.json"))) == 1
    assert (work / "out" / "cold" / "report.md").is_file()
    assert (r.stdout + r.stderr).count("format warm-up") == 1


def test_a_global_batch_the_processes_do_not_divide_is_refused(work):
    """Batch sizes are global: 2 processes cannot split 5 prompts x 3 completions; one line, exit 2, nothing
    written (the check reads WORLD_SIZE, as it is set for every rank of a launch)."""
    r = launch(work, "model=tiny", "objective=rlvr", "objective.prompts_per_step=5", "objective.num_generations=3",
               "name=bad", WORLD_SIZE="2")
    assert r.returncode == 2
    lines = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert lines == ["error: bad objective.prompts_per_step 5; valid: a value whose global batch "
                     "(objective.prompts_per_step x objective.num_generations) is a multiple of 2 "
                     "(2 process(es) x objective.grad_accum 1)"]
    assert not (work / "out" / "bad").exists()


def test_mixed_precision_comes_from_the_config_not_the_environment(work):
    """A default ``accelerate config`` exports ACCELERATE_MIXED_PRECISION=bf16; it silently trained in bf16
    (issue 17). The run's precision is its config's: the same ΔW with or without the variable, recorded."""
    args = [*COMMON, "adapter=full", "objective=sft", "eval.enabled=false"]
    for name, env in (("plain", {}), ("env-bf16", {"ACCELERATE_MIXED_PRECISION": "bf16"})):
        r = launch(work, *args, f"name={name}", **env)
        assert r.returncode == 0, r.stderr[-2000:]
    (a, rec_a), = runs_single(work / "out" / "plain")
    (b, rec_b), = runs_single(work / "out" / "env-bf16")
    assert rec_b["distributed"]["mixed_precision"] == "no"
    assert rel_diff(a, b)[0] == 0.0


def runs_single(root: Path) -> list[tuple[Path, dict]]:
    return [(p.parent, json.loads(p.read_text())) for p in root.glob("single/*/run.json")]


def test_ledgers_of_two_ranks_merge_into_the_single_process_ledger(monkeypatch):
    """Rank 0 scored the first half of each step's batch, rank 1 the second: merged, the counts add up and the
    kept correct rollouts are the first ``keep`` of each prompt in the order one process scored them."""
    from harness.train.objectives.rlvr import Ledger

    batch = [(0, "a", True, [1]), (0, "a", True, [2]), (0, "b", False, [3]), (0, "b", True, [4]),
             (1, "a", True, [5]), (1, "b", True, [6]), (1, "a", True, [7]), (1, "b", True, [8])]
    one = Ledger(keep=2)
    for step, pid, ok, ids in batch:
        one.add(step, pid, ok, ids, "x")
    halves = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        part = Ledger(keep=2)
        for step in (0, 1):
            rows = [r for r in batch if r[0] == step]
            for _, pid, ok, ids in rows[2 * rank: 2 * rank + 2]:
                part.add(step, pid, ok, ids, "x")
        halves.append(part)
    merged = one.merge(halves)
    assert dict(merged.counts) == dict(one.counts)
    assert {p: [r["ids"] for r in rows] for p, rows in merged.correct.items()} == \
           {p: [r["ids"] for r in rows] for p, rows in one.correct.items()} == {"a": [[1], [2]], "b": [[4], [6]]}
