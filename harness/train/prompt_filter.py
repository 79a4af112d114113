"""Keep the training prompts the base model sometimes, but not always, solves.

A GRPO group whose completions all score alike has zero advantage and gives no gradient; on the warmed
SmolLM2 86 % of groups were like that (issue 12): prompts the base always or never solves. Like DAPO's
dynamic sampling, but once per base and before training: pass@1 of every training prompt is estimated at the
base from ``k`` samples at the rollout temperature, and only prompts with ``lo < pass@1 < hi`` are kept. The
same filtered prompts serve both objectives, so SFT and RLVR stay comparable. Cached per (base weights,
task, settings) with :func:`harness.core.store.once_per_base`.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

from omegaconf import DictConfig, OmegaConf

from harness.core.store import once_per_base


def settings(cfg: DictConfig) -> dict[str, Any]:
    """The ``prompt_filter`` block (what the cached base pass rates depend on, besides the base and the task)."""
    from harness.core.config import block

    f = block(cfg, "prompt_filter")
    return {k: f[k] for k in ("k", "temperature", "lo", "hi", "max_new_tokens", "batch_size", "seed")}


def base_pass_rates(cfg: DictConfig, task, base, device: str) -> dict[str, float]:
    """pass@1 at the base of every training prompt (cached once per base weights, task and settings)."""
    s = settings(cfg)

    def compute() -> dict[str, float]:
        from harness.data.models import load_base
        from harness.data.sampling import sample_completions

        model, tok = load_base(cfg.model, base, device)
        model.eval()
        samples = sample_completions(model, tok, task.train, k=s["k"], temperature=s["temperature"],
                                     max_new_tokens=s["max_new_tokens"], batch_size=s["batch_size"],
                                     seed=s["seed"], desc="prompt filter: base pass@1")
        return {e.id: sum(task.score(c["text"], e.answer) for c in samples[e.id]) / s["k"] for e in task.train}

    from harness.data.tasks.scoring import scorer_version

    key = {"task": OmegaConf.to_container(cfg.task, resolve=True), "filter": s, "scoring": scorer_version(),
           "dtype": cfg.model.get("dtype", "float32")}
    return once_per_base("prompt_filter", base, key, compute,
                         save=lambda v, p: p.write_text(json.dumps(v)), load=lambda p: json.loads(p.read_text()))


def filter_task(cfg: DictConfig, task, base, device: str) -> tuple[Any, dict[str, Any]]:
    """The task with only the training prompts whose base pass@1 lies strictly in (lo, hi); and what was
    done (kept/of, pass-rate mix, seconds) for ``run.json``. The held-out split is never filtered."""
    t0 = time.time()
    s = settings(cfg)
    rates = base_pass_rates(cfg, task, base, device)
    kept = [e for e in task.train if s["lo"] < rates[e.id] < s["hi"]]
    if not kept:
        raise ValueError(f"prompt_filter kept no training prompt of {len(task.train)} "
                         f"(base pass@1 never in ({s['lo']}, {s['hi']}) with k={s['k']}); widen the bounds, "
                         "raise task.n_train or change task.mix")
    info = {"kept": len(kept), "of": len(task.train), "seconds": round(time.time() - t0, 1),
            "mean_pass_kept": round(sum(rates[e.id] for e in kept) / len(kept), 4),
            "always": sum(rates[e.id] >= s["hi"] for e in task.train),
            "never": sum(rates[e.id] <= s["lo"] for e in task.train)}
    print(f"[harness] prompt filter: kept {info['kept']} of {info['of']} training prompts "
          f"({info['always']} always solved, {info['never']} never, k={s['k']}, T={s['temperature']})", flush=True)
    return replace(task, train=kept), info
