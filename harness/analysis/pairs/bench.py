"""``python -m harness.bench pairs [shape=qwen2.5-0.5b] [layers=N] [threads=T]``: the harness against
``modeldelta`` (the peer tool on PyPI) on the same checkpoint pair, in one run.

The pair is built from a config, no download (:func:`harness.analysis.geometry.synthetic.write_model_pair`: the shape's
tensors with random weights, a planted rank-8 + 1 % sparse update on every attention/MLP projection, both
stored in bf16 and sharded) and cached under ``$HARNESS_CACHE/bench-pairs/``. Each tool runs in its own
process, timed by wall clock, its peak memory read from the kernel (``wait4``'s maximum resident set size):

- harness, first pair of a base: ``python -m harness.analyze base=… tuned=…`` with an empty cache, so it
  hashes the base and builds W0's decompositions; the full metric set (drift, angles, nulls, masks, the
  three sparsity criteria, ranks) on every projection;
- harness, a further pair of the same base: the same with W0's decompositions cached (``force=true``);
- modeldelta as users run it: ``modeldelta <base> <tuned> -o out.json`` (every tensor of ≥ 1000 entries,
  the embedding included; ΔW's own spectrum only: norms, effective rank, top singular values), once as
  shipped and once with ``OMP_WAIT_POLICY=PASSIVE``, the setting the harness's analyzer gives itself;
- modeldelta on the harness's matrices (its ``compare_models`` on the projections only), with that setting.

It prints each figure, the ratios against modeldelta, and the largest difference between the two tools'
effective ranks of ΔW (the one figure both compute, same definition). The machine's load average is printed
before and after: on a shared machine the timings move with it; the ratios come from one run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

MODELDELTA_MATRICES = """
import json, sys
from modeldelta.core.weight_diff import compare_models
from modeldelta.utils.model_loader import get_tensor_map
keep = set(json.loads(sys.argv[3]))
a = {k: v for k, v in get_tensor_map(sys.argv[1]).items() if k in keep}
b = {k: v for k, v in get_tensor_map(sys.argv[2]).items() if k in keep}
results, _ = compare_models(a, b)
json.dump({r["name"]: r.get("effective_rank") for r in results}, open(sys.argv[4], "w"))
"""


# The analyzer sets this for itself (harness.launch.analyze): OpenMP threads that wait sleep instead of spinning,
# which on a loaded machine is worth several times in LAPACK's eigensolvers, modeldelta's SVDs included. The
# bench runs modeldelta both as shipped and with the same setting, so the ratio is not a setting's effect.
PASSIVE = {"OMP_WAIT_POLICY": "PASSIVE"}


@dataclass
class Measured:
    label: str
    seconds: float
    peak_mib: float
    ok: bool
    tail: str = ""


# Runs the measured command as its child and reports the child's peak resident set size. Why a wrapper: a child
# forked from this (large) bench process would inherit its resident size as a starting peak; forked from a
# fresh interpreter, it starts at a few MiB.
PEAK = "__peak_kib__"
WRAPPER = (f"import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
           f"print('{PEAK}', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(rc)")


def measure(label: str, cmd: list[str], env: dict[str, str] | None = None) -> Measured:
    """Run ``cmd`` to completion: wall seconds and the peak resident memory of its process (MiB)."""
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], capture_output=True, text=True,
                         env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - t0
    peak = [line.split()[1] for line in res.stdout.splitlines() if line.startswith(PEAK)]
    return Measured(label, seconds, int(peak[-1]) / 1024 if peak else float("nan"), res.returncode == 0,
                    (res.stdout + res.stderr)[-1500:])


def bench_pair(shape: str, layers: int | None, seed: int) -> tuple[Path, Path, dict]:
    """The cached bench pair of a shape (built once)."""
    from harness.analysis.geometry.synthetic import MODEL_SHAPES, write_model_pair
    from harness.core.store import cache_lock, cache_root, settings_hash

    if shape not in MODEL_SHAPES:
        raise SystemExit(f"error: unknown shape {shape!r}; valid: {', '.join(MODEL_SHAPES)}")
    config = dict(MODEL_SHAPES[shape])
    if layers:
        config["num_hidden_layers"] = layers
    out = cache_root() / "bench-pairs" / f"{shape}-{settings_hash({'config': config, 'seed': seed}, 10)}"
    with cache_lock(out.name):
        if not (out / "tuned" / "model.safetensors.index.json").exists():
            print(f"[harness] building the {shape} bench pair ({config['num_hidden_layers']} layers, bf16) in {out}",
                  file=sys.stderr, flush=True)
            write_model_pair(config, out, seed=seed)
    return out / "base", out / "tuned", config


def thread_env(threads: int | None) -> dict[str, str]:
    if not threads:
        return {}
    return {k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def bench_pairs(args) -> str:
    from harness.analysis.geometry.sources import Checkpoint

    shape = getattr(args, "shape", None) or "qwen2.5-0.5b"
    base, tuned, config = bench_pair(shape, args.layers, args.seed)
    names = Checkpoint(base).analyzed()
    env = thread_env(args.threads)
    py = sys.executable
    load_before = os.getloadavg()
    rows: list[Measured] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cache = {"HARNESS_CACHE": str(tmp / "cache")}
        harness = [py, "-m", "harness.launch.analyze", f"base={base}", f"tuned={tuned}", f"out={tmp / 'harness'}"]
        rows.append(measure("harness, first pair of a base (cold: hash + W0 decompositions)", harness,
                            {**env, **cache}))
        rows.append(measure("harness, further pair of that base (W0 cached)", harness + ["force=true"],
                            {**env, **cache}))
        md = [str(Path(sys.executable).with_name("modeldelta")), str(base), str(tuned), "-o", str(tmp / "md.json")]
        rows.append(measure("modeldelta CLI, every tensor (as users run it)", md, env))
        rows.append(measure("modeldelta CLI, with the harness's OMP_WAIT_POLICY=PASSIVE", md, {**env, **PASSIVE}))
        rows.append(measure("modeldelta on the harness's matrices, PASSIVE",
                            [py, "-c", MODELDELTA_MATRICES, str(base), str(tuned), json.dumps(names),
                             str(tmp / "md_ranks.json")], {**env, **PASSIVE}))
        agreement = rank_agreement(tmp / "harness" / "geometry.csv", tmp / "md_ranks.json")
        summary = read_summary(tmp / "harness" / "geometry_summary.json")
    load_after = os.getloadavg()
    return report(shape, config, len(names), rows, agreement, summary, load_before, load_after, args.threads)


def read_summary(path: Path) -> dict:
    try:
        return json.loads(path.read_text())["whole_model"]
    except (OSError, ValueError, KeyError):
        return {}


def rank_agreement(harness_csv: Path, md_json: Path) -> str:
    """Largest relative difference of ΔW's effective rank, harness vs modeldelta, over the shared matrices."""
    import pandas as pd

    try:
        ours = pd.read_csv(harness_csv).set_index("name")["eff_rank"]
        theirs = pd.Series(json.loads(md_json.read_text()), dtype=float)
    except (OSError, ValueError, KeyError):
        return "effective ranks not compared (a tool failed)"
    common = ours.index.intersection(theirs.index)
    rel = ((ours[common] - theirs[common]).abs() / ours[common]).max()
    return f"effective rank of ΔW, harness vs modeldelta: largest relative difference {rel:.1e} over {len(common)} matrices"


def report(shape: str, config: dict, n: int, rows: list[Measured], agreement: str, summary: dict,
           load_before: tuple, load_after: tuple, threads: int | None) -> str:
    refs = {"CLI": rows[2], "CLI passive": rows[3], "same matrices passive": rows[4]}
    lines = [f"pairs bench: {shape}-shaped pair from its config ({config['num_hidden_layers']} layers, hidden "
             f"{config['hidden_size']}, MLP {config['intermediate_size']}, vocabulary {config['vocab_size']}), "
             f"bf16, planted rank-8 + 1 % sparse update; {n} attention/MLP matrices; threads "
             f"{threads or 'default'}; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after "
             f"(timings move with the machine's load; the ratios come from one run)"]
    lines.append(f"  {'':62} {'wall s':>8} {'peak MiB':>9}")
    for r in rows:
        status = ""
        if not r.ok:
            tail = r.tail.strip().splitlines()
            status = "   FAILED: " + (tail[-1] if tail else "")
        lines.append(f"  {r.label:62} {r.seconds:8.1f} {r.peak_mib:9.0f}{status}")
    for r in rows[:2]:
        lines.append(f"  {r.label.split(' (')[0]}: time / memory vs modeldelta " + ", ".join(
            f"{key} {r.seconds / ref.seconds:.2f} / {r.peak_mib / ref.peak_mib:.2f}" for key, ref in refs.items()))
    if summary:
        g = lambda k: summary.get(k, float("nan"))  # noqa: E731
        lines.append(f"  harness whole model: drift {g('drift'):.3g}, sparsity bf16/rel/abs {g('sparsity_bf16'):.3f}/"
                     f"{g('sparsity_rel1e3'):.3f}/{g('sparsity_abs'):.3f}, eff. rank {g('eff_rank'):.1f}, energy k16 "
                     f"{g('energy_k16'):.3g}")
    lines.append(f"  {agreement}")
    return "\n".join(lines)
