"""pass@1 of prompts, estimated as the mean verifier score over K samples at temperature T, and the per-run
``prompts.csv`` (DESIGN.md, "The run artifact contract").

Start pass rates are measured at the base once per (base weights, task, sampling settings, sampling seed) with
:func:`harness.core.store.once_per_base` (keyed by the hash of the base's weights, not its path, so a checkpoint
retrained at the same path is measured again); every run of a sweep with that key reuses them. With
``passrate.start_seeded=true`` the start (and end) samples are drawn with the run's seed, so each seed gets its
own start and the every-seed rule averages the noisy hard/easy split at small K over seeds.

For RLVR runs the gradient similarity is computed from the correct rollouts GRPO sampled during training
(``correct_rollouts.jsonl``, see :mod:`harness.measure.gradsim`).
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from harness.core.config import block
from harness.core.store import atomic_path
from harness.data.sampling import sample_completions
from harness.measure.base import cached_on_base, measurement, write_artifact
from harness.measure.classify import classify
from harness.measure.ledger import per_prompt, read_ledger

PROMPTS_COLUMNS = ["prompt_id", "split", "group", "pass_start", "pass_end", "k", "rollouts_seen", "correct_seen",
                   "gold_seen", "visits", "first_correct_step", "class", "grad"]


# --- settings and the start cache ------------------------------------------------------------------------


def _settings(cfg: DictConfig) -> dict:
    """Sampling settings of pass@1. ``seed`` is the run's seed with ``passrate.start_seeded``, else
    ``passrate.seed`` (one start for every run of the sweep)."""
    pr = block(cfg, "passrate")
    seeded = pr["start_seeded"]
    return {"k": pr["k"], "temperature": pr["temperature"], "max_new_tokens": pr["max_new_tokens"],
            "batch_size": pr["batch_size"], "seed": int(cfg.seed) if seeded else pr["seed"], "seeded": seeded,
            "splits": list(pr["splits"])}


GRAD_AT = ("base", "end")


def _grad_settings(cfg: DictConfig) -> dict:
    g = block(cfg, "passrate")["grad_sim"]
    if g["at"] not in GRAD_AT:
        raise ValueError(f"passrate.grad_sim.at must be one of {GRAD_AT}, got {g['at']!r}")
    return {k: g[k] for k in ("enabled", "max_rollouts", "dim", "seed", "params", "at")}


def _examples(task, splits: list[str]) -> list[tuple[str, object]]:
    return [(split, e) for split in splits for e in getattr(task, split)]


def start_settings(cfg: DictConfig) -> dict:
    """What the start pass rates depend on besides the base weights: task, sampling settings (seed included)
    and dtype."""
    from harness.data.tasks.scoring import scorer_version

    return {"task": OmegaConf.to_container(cfg.task, resolve=True), "passrate": _settings(cfg),
            "scoring": scorer_version(),
            "dtype": cfg.model.get("dtype", "float32")}


class _Base:
    """The base model, loaded on first use."""

    def __init__(self, cfg: DictConfig, base):
        self.cfg, self.base, self.model, self.tok = cfg, base, None, None

    def get(self):
        if self.model is None:
            from harness.data.models import load_base

            self.model, self.tok = load_base(self.cfg.model, self.base)
            self.model.eval()
        return self.model, self.tok


def _sample_entries(model, tok, task, examples, s: dict, desc: str) -> dict[str, dict]:
    samples = sample_completions(model, tok, [e for _, e in examples], k=s["k"], temperature=s["temperature"],
                                 max_new_tokens=s["max_new_tokens"], batch_size=s["batch_size"], seed=s["seed"],
                                 desc=desc)
    out = {}
    for split, e in examples:
        scores = [task.score(c["text"], e.answer) for c in samples[e.id]]
        out[e.id] = {"split": split, "group": e.group, "pass": sum(scores) / len(scores), "k": len(scores)}
    return out


def start_passrates(cfg: DictConfig, task, base, loader: _Base | None = None) -> tuple[dict, float]:
    """Start pass rates at the base, once per (base weights, settings): (cache entry, seconds spent here
    computing it; 0 when it came from the cache)."""
    from harness.core.store import base_key

    settings = start_settings(cfg)
    key = base_key(base, settings)
    loader = loader or _Base(cfg, base)

    def compute() -> dict:
        t0 = time.time()
        model, tok = loader.get()
        s = settings["passrate"]
        prompts = _sample_entries(model, tok, task, _examples(task, s["splits"]), s, "pass@1 start")
        return {"key": key, "base": str(base), "settings": s, "prompts": prompts,
                "seconds": round(time.time() - t0, 2)}

    return cached_on_base("passrate", base, settings, compute)


def gradient_sketches(model, tok, rollouts: dict[str, list[dict]], texts: dict[str, str], g: dict
                      ) -> dict[str, tuple[np.ndarray, float, int, int]]:
    """Count sketch of the gradient, at ``model``'s weights, of the mean token log-likelihood of each prompt's
    first ``g["max_rollouts"]`` correct rollouts. Returns {prompt id: (sketch, exact gradient norm, completion
    tokens, rollouts used)}."""
    from harness.measure.gradsim import CountSketch, gradient_params, loglik_gradient_sketch

    sketch = CountSketch(g["dim"], g["seed"])
    names = gradient_params(model, g["params"])
    out = {}
    for p in tqdm(sorted(rollouts), desc="gradient sketches", leave=False):
        used = rollouts[p][: g["max_rollouts"]]
        vec, norm, ntok = loglik_gradient_sketch(model, tok, texts[p], used, names, sketch)
        out[p] = (vec.astype(np.float32), norm, ntok, len(used))
    return out


# --- the run hook ----------------------------------------------------------------------------------------


@measurement("passrate", "prompts.csv", order=20)
def passrates_for_run(cfg: DictConfig, job_dir: Path, merged, tok, task, base) -> Path:
    """After training: ``prompts.csv`` (pass@1 at start and end, rollouts and correct rollouts seen, class), and
    for RLVR runs the gradient sketches of the rewarded training prompts (``grad_sketch.npz``). Timings, class
    counts and the prompts left out of the similarity (and why) go to ``passrate.json``.

    The gradients come from the correct rollouts sampled in training (``correct_rollouts.jsonl``) and are taken,
    by default, at the *base* weights (``passrate.grad_sim.at=base``): the hard/easy split is defined there, and
    every run, adapter and seed is then differentiated at the same W0, so a difference between groups or
    conditions reflects the prompts and their rollouts, not where each run's training ended (a LoRA run and a
    full run end at different weights). ``at=end`` takes them at the run's final merged weights instead, the
    nearest this harness has to the paper's training checkpoint (no intermediate checkpoints are kept).
    """
    from harness.measure.ledger import read_correct_rollouts

    job_dir = Path(job_dir)
    s, g = _settings(cfg), _grad_settings(cfg)
    tau = block(cfg, "passrate")["tau"]
    objective = cfg.objective.name
    loader = _Base(cfg, base)
    timings: dict[str, float] = {}

    start, timings["start"] = start_passrates(cfg, task, base, loader)
    t0 = time.time()
    examples = _examples(task, s["splits"])
    merged.eval()
    end = _sample_entries(merged, tok, task, examples, s, "pass@1 end")
    timings["end"] = time.time() - t0

    ledger = per_prompt(read_ledger(job_dir / "ledger.csv"))
    train_ids = {e.id for e in task.train}
    rows = []
    for split, e in examples:
        led = ledger.get(e.id)
        gold = int(objective == "sft" and e.id in train_ids)
        correct = led.correct if led else 0
        p0, p1 = start["prompts"][e.id]["pass"], end[e.id]["pass"]
        rows.append({"prompt_id": e.id, "split": split, "group": e.group, "pass_start": p0, "pass_end": p1,
                     "k": s["k"], "rollouts_seen": led.rollouts if led else 0, "correct_seen": correct,
                     "gold_seen": gold, "visits": led.visits if led else 0,
                     "first_correct_step": led.first_correct_step if led else -1,
                     "class": classify(p0, p1, correct + gold, tau), "grad": 0})

    grad_info: dict = {}
    if objective != "sft" and (job_dir / "correct_rollouts.jsonl").exists() and g["enabled"]:  # an RL run
        t0 = time.time()
        kept = read_correct_rollouts(job_dir / "correct_rollouts.jsonl")
        train_rows = [r for r in rows if r["split"] == "train"]
        use = {r["prompt_id"]: kept[r["prompt_id"]] for r in train_rows if kept.get(r["prompt_id"])}
        # why a training prompt has no gradient: never sampled, sampled but never correct, or (a run written
        # before correct_rollouts.jsonl existed) correct rollouts counted but not kept
        grad_info["left_out"] = {
            "not_sampled": sum(r["rollouts_seen"] == 0 for r in train_rows),
            "no_correct_rollout": sum(r["rollouts_seen"] > 0 and r["correct_seen"] == 0 for r in train_rows),
            "correct_not_kept": sum(r["correct_seen"] > 0 and r["prompt_id"] not in use for r in train_rows)}
        if use:
            model, mtok = merged, tok
            if g["at"] == "base":
                model, mtok = loader.get()
            texts = {e.id: e.prompt for e in task.train}
            sketches = gradient_sketches(model, mtok, use, texts, g)
        else:
            sketches = {}
        ids = sorted(sketches)
        with atomic_path(job_dir / "grad_sketch.npz") as tmp:
            np.savez(tmp, ids=np.array(ids, dtype=str),
                     sketch=np.stack([sketches[p][0] for p in ids]) if ids else np.zeros((0, g["dim"]), np.float32),
                     norm=np.array([sketches[p][1] for p in ids]), n_tokens=np.array([sketches[p][2] for p in ids]),
                     n_rollouts=np.array([sketches[p][3] for p in ids]), dim=g["dim"], seed=g["seed"],
                     params=g["params"], at=g["at"], source="training")
        for r in rows:
            r["grad"] = int(r["prompt_id"] in sketches)
        grad_info["sketched"] = len(ids)
        timings["grad"] = time.time() - t0

    with atomic_path(job_dir / "prompts.csv") as tmp, tmp.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=PROMPTS_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    counts: dict[str, int] = {}
    for r in rows:
        if r["split"] == "train":
            counts[r["class"]] = counts.get(r["class"], 0) + 1
    write_artifact(job_dir, "passrate.json", {
        "start_key": start["key"], "tau": tau, "settings": s, "grad_sim": {**g, **grad_info},
        "train_classes": counts, "seconds": {k: round(v, 2) for k, v in timings.items()}})
    loader.model = None
    return job_dir / "prompts.csv"
