"""pass@k curves from n samples per prompt: does the base catch up with a tuned run at large k?

*Does RL really incentivize reasoning beyond the base model?* (arXiv 2504.13837) claims RL raises pass@1 while
the base matches or overtakes it at large k. Each run measures it on held-out prompts of its task:

- n samples per prompt at temperature T from the base (once per base: :func:`harness.core.store.once_per_base`,
  keyed by the hash of its weights and these settings) and from the run's merged model, c of them correct
  (the task's scorer, the one behind the RLVR reward);
- pass@k by the unbiased estimator of Chen et al. (2021), 1 − C(n−c, k)/C(n, k), for k = 1..n, per prompt,
  averaged over prompts per difficulty group (``Example.group``) and over all of them;
- the crossover k: the smallest k at which the base's mean pass@k is at least the run's (None if none).

The estimator and the crossover import nothing heavy (numpy only), so the report reads them from here too.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from harness.measure.base import cached_on_base, measurement, write_artifact

ESTIMATOR = "unbiased pass@k = 1 - C(n-c, k) / C(n, k) (Chen et al. 2021), per prompt, averaged over prompts"
ALL = "all"  # the pseudo-group of every prompt


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples with ``c`` correct: 1 − C(n−c, k)/C(n, k).

    Product form, stable for any n (no factorials): C(n−c, k)/C(n, k) = Π_{i=n−c+1}^{n} (1 − k/i); when fewer
    than k samples are wrong (n − c < k) every k-subset holds a correct one, so pass@k = 1."""
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1, dtype=float)))


def pass_at_k_curve(n: int, c: int) -> np.ndarray:
    """pass@k for k = 1..n (index k − 1)."""
    return np.array([pass_at_k(n, c, k) for k in range(1, n + 1)])


def mean_curve(counts: Iterable[tuple[int, int]]) -> np.ndarray:
    """Mean pass@k curve over prompts, each given as (n, c); every prompt must have the same n."""
    counts = list(counts)
    if not counts:
        return np.zeros(0)
    ns = {n for n, _ in counts}
    if len(ns) != 1:
        raise ValueError(f"every prompt needs the same number of samples n, got {sorted(ns)}")
    return np.mean([pass_at_k_curve(n, c) for n, c in counts], axis=0)


def crossover_k(base: Sequence[float], run: Sequence[float], tol: float = 1e-12) -> int | None:
    """The smallest k (1-based) with base pass@k ≥ run pass@k, or None when the run stays ahead at every k.
    ``tol`` absorbs rounding where both curves reach the same value (e.g. 1.0)."""
    b, r = np.asarray(base, dtype=float), np.asarray(run, dtype=float)
    if b.shape != r.shape:
        raise ValueError(f"curves of different length: {b.shape} vs {r.shape}")
    hit = np.flatnonzero(b >= r - tol)
    return int(hit[0]) + 1 if hit.size else None


def group_curves(prompts: Sequence[dict], n: int) -> dict[str, dict]:
    """Per difficulty group (and ``all``): prompts, mean base and run curves, their pass@1 and pass@n, and the
    crossover k. ``prompts``: dicts with ``group``, ``c_base``, ``c_run``."""
    groups: dict[str, list[dict]] = {}
    for p in prompts:
        groups.setdefault(str(p.get("group") or "") or "-", []).append(p)
    order = [ALL, *sorted(groups)] if len(groups) > 1 else [ALL]
    out = {}
    for g in order:
        rows = list(prompts) if g == ALL else groups[g]
        base = mean_curve((n, int(p["c_base"])) for p in rows)
        run = mean_curve((n, int(p["c_run"])) for p in rows)
        out[g] = {"n_prompts": len(rows), "base": base.tolist(), "run": run.tolist(),
                  "base_pass1": float(base[0]), "run_pass1": float(run[0]),
                  "base_passn": float(base[-1]), "run_passn": float(run[-1]),
                  "crossover_k": crossover_k(base, run)}
    return out


# --- the run hook ----------------------------------------------------------------------------------------


def settings(cfg) -> dict:
    """Sampling settings of pass@k (``passk`` block)."""
    from harness.core.config import block

    p = block(cfg, "passk")
    return {k: p[k] for k in ("n", "temperature", "max_new_tokens", "n_prompts", "batch_size", "seed")}


def correct_counts(model, tok, task, examples, s: dict, desc: str) -> dict[str, int]:
    """Correct completions (the task's scorer) of ``s["n"]`` samples per example at ``s["temperature"]``."""
    from harness.data.sampling import sample_completions

    samples = sample_completions(model, tok, examples, k=s["n"], temperature=s["temperature"],
                                 max_new_tokens=s["max_new_tokens"], batch_size=s["batch_size"], seed=s["seed"],
                                 desc=desc)
    return {e.id: int(sum(task.score(c["text"], e.answer) for c in samples[e.id])) for e in examples}


def base_counts(cfg, task, examples, base, device: str) -> tuple[dict, float]:
    """The base's correct counts on ``examples``, once per (base weights, task, prompts, settings, dtype):
    (cache entry, seconds spent here; 0 when it came from the cache)."""
    from omegaconf import OmegaConf

    from harness.core.store import base_key
    from harness.data.tasks.scoring import scorer_version

    s = settings(cfg)
    key = {"task": OmegaConf.to_container(cfg.task, resolve=True), "prompts": [e.id for e in examples],
           "scoring": scorer_version(), "passk": s, "dtype": cfg.model.get("dtype", "float32")}

    def compute() -> dict:
        from harness.data.models import load_base

        t0 = time.time()
        model, tok = load_base(cfg.model, base, device)
        model.eval()
        counts = correct_counts(model, tok, task, examples, s, "pass@k base")
        return {"key": base_key(base, key), "counts": counts, "seconds": round(time.time() - t0, 2)}

    return cached_on_base("passk", base, key, compute)


@measurement("passk", "passk.json", order=40)
def passk_for_run(cfg, job_dir: Path, merged, tok, task, base) -> dict:
    """After training: n samples per held-out prompt from the base (cached) and the run; writes ``passk.json``
    (settings, per-prompt counts, per-group mean curves for k = 1..n, pass@1, pass@n, crossover k)."""
    s = settings(cfg)
    examples = task.test[: s["n_prompts"]]  # a fixed set: the first held-out prompts
    device = str(next(merged.parameters()).device)
    base_entry, base_s = base_counts(cfg, task, examples, base, device)
    t0 = time.time()
    merged.eval()
    run = correct_counts(merged, tok, task, examples, s, "pass@k run")
    run_s = time.time() - t0
    prompts = [{"prompt_id": e.id, "group": e.group, "n": s["n"], "c_base": int(base_entry["counts"][e.id]),
                "c_run": run[e.id]} for e in examples]
    groups = group_curves(prompts, s["n"])
    out = {"estimator": ESTIMATOR, "split": "test", "settings": s, "base_key": base_entry["key"],
           "k": list(range(1, s["n"] + 1)), "groups": groups, "prompts": prompts,
           "pass1_base": groups[ALL]["base_pass1"], "pass1_run": groups[ALL]["run_pass1"],
           "passn_base": groups[ALL]["base_passn"], "passn_run": groups[ALL]["run_passn"],
           "crossover_k": groups[ALL]["crossover_k"],
           "seconds": {"base": round(base_s, 2), "run": round(run_s, 2)}}
    return write_artifact(job_dir, "passk.json", out, {f"passk/{k}": v for k, v in out.items()
                                                     if k.startswith(("pass1", "passn", "crossover"))})
