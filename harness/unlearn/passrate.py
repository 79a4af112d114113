"""pass@1 of prompts, estimated as the mean verifier score over K samples at temperature T, and the per-run
``prompts.csv`` (DESIGN.md, "The run artifact contract").

Start pass rates are measured at the base once per (base, task, sampling settings) and cached on disk
(``$HARNESS_CACHE/passrate/start-<key>.json``, under an inter-process lock); every run of a sweep reuses them.
The same cache entry keeps the token ids of the correct base samples: they are the correct rollouts whose
gradients the similarity analysis sketches (see :mod:`harness.unlearn.gradsim`).
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from harness.unlearn.classify import classify
from harness.unlearn.ledger import per_prompt, read_ledger

PROMPTS_COLUMNS = ["prompt_id", "split", "group", "pass_start", "pass_end", "k", "rollouts_seen", "correct_seen",
                   "gold_seen", "visits", "first_correct_step", "class", "grad"]


@torch.no_grad()
def sample_completions(model, tok, examples, k: int = 8, temperature: float = 0.7, max_new_tokens: int = 16,
                       batch_size: int = 64, seed: int = 0, desc: str = "pass@1") -> dict[str, list[dict]]:
    """K sampled completions per example, batched over prompts x samples: per example id a list of
    ``{"text", "ids" (completion token ids, up to and including EOS), "eos" (finished with EOS)}``."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
    tok.padding_side = "left"
    per_batch = max(1, batch_size // k)
    out: dict[str, list[dict]] = {}
    device = next(model.parameters()).device
    eos, pad = tok.eos_token_id, tok.pad_token_id
    for i in tqdm(range(0, len(examples), per_batch), desc=desc, leave=False):
        chunk = examples[i : i + per_batch]
        enc = tok([e.prompt for e in chunk], return_tensors="pt", padding=True).to(device)
        ids = model.generate(**enc, do_sample=True, temperature=temperature, top_p=1.0, top_k=0,
                             max_new_tokens=max_new_tokens, num_return_sequences=k,
                             pad_token_id=pad, eos_token_id=eos)
        gen_ids = ids[:, enc["input_ids"].shape[1] :].tolist()
        texts = tok.batch_decode(ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        for j, e in enumerate(chunk):
            outs = []
            for row, text in zip(gen_ids[j * k : (j + 1) * k], texts[j * k : (j + 1) * k]):
                finished = eos is not None and eos in row
                row = row[: row.index(eos) + 1] if finished else row
                outs.append({"text": text, "ids": row, "eos": finished})
            out[e.id] = outs
    return out


# --- settings and the start cache ------------------------------------------------------------------------


def _settings(cfg: DictConfig) -> dict:
    pr = cfg.passrate
    return {"k": int(pr.get("k", 8)), "temperature": float(pr.get("temperature", 0.7)),
            "max_new_tokens": int(pr.get("max_new_tokens", 16)), "batch_size": int(pr.get("batch_size", 64)),
            "seed": int(pr.get("seed", 0)), "splits": list(pr.get("splits", ["train", "test"]))}


def _grad_settings(cfg: DictConfig) -> dict:
    g = cfg.passrate.get("grad_sim") or {}
    return {"enabled": bool(g.get("enabled", True)), "max_rollouts": int(g.get("max_rollouts", 4)),
            "dim": int(g.get("dim", 4096)), "seed": int(g.get("seed", 0)), "resample": int(g.get("resample", 32)),
            "resample_temperature": float(g.get("resample_temperature", 1.0)),
            "params": str(g.get("params", "matrices"))}


def _examples(task, splits: list[str]) -> list[tuple[str, object]]:
    return [(split, e) for split in splits for e in getattr(task, split)]


def start_key(cfg: DictConfig, base) -> str:
    """Cache key of the start pass rates: base dir + task config + sampling settings + dtype."""
    from harness.models import settings_hash

    return settings_hash({"base": str(base), "task": OmegaConf.to_container(cfg.task, resolve=True),
                          "passrate": _settings(cfg), "dtype": cfg.model.get("dtype", "float32")})


def _cache_dir() -> Path:
    from harness.models import cache_root

    d = cache_root() / "passrate"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


class _Base:
    """The base model, loaded on first use."""

    def __init__(self, cfg: DictConfig, base):
        self.cfg, self.base, self.model, self.tok = cfg, base, None, None

    def get(self):
        if self.model is None:
            from harness.models import device_for, load_model

            self.model, self.tok = load_model(self.base, self.cfg.model.get("dtype", "float32"),
                                              device_for(self.cfg.model))
            self.model.eval()
        return self.model, self.tok


def _sample_entries(model, tok, task, examples, s: dict, k: int, seed: int, desc: str) -> dict[str, dict]:
    samples = sample_completions(model, tok, [e for _, e in examples], k=k, temperature=s["temperature"],
                                 max_new_tokens=s["max_new_tokens"], batch_size=s["batch_size"], seed=seed,
                                 desc=desc)
    out = {}
    for split, e in examples:
        scores = [task.score(c["text"], e.answer) for c in samples[e.id]]
        out[e.id] = {"split": split, "group": e.group, "pass": sum(scores) / len(scores), "k": len(scores),
                     "correct": [c for c, sc in zip(samples[e.id], scores) if sc > 0]}
    return out


def start_passrates(cfg: DictConfig, task, base, loader: _Base | None = None) -> tuple[dict, float]:
    """Start pass rates at the base (cached per base): (cache entry, seconds spent here computing it)."""
    from harness.models import cache_lock

    key = start_key(cfg, base)
    path = _cache_dir() / f"start-{key}.json"
    if path.exists():
        return json.loads(path.read_text()), 0.0
    loader = loader or _Base(cfg, base)
    with cache_lock(f"passrate-start-{key}"):
        if path.exists():
            return json.loads(path.read_text()), 0.0
        t0 = time.time()
        s = _settings(cfg)
        model, tok = loader.get()
        prompts = _sample_entries(model, tok, task, _examples(task, s["splits"]), s, s["k"], s["seed"],
                                  "pass@1 start")
        data = {"key": key, "base": str(base), "settings": s, "prompts": prompts,
                "seconds": round(time.time() - t0, 2)}
        _write_json(path, data)
        return data, time.time() - t0


def topup_correct(cfg: DictConfig, task, base, pids: list[str], loader: _Base) -> tuple[dict, float]:
    """For prompts without a correct base sample, draw ``grad_sim.resample`` more samples at the base (once per
    base: the extra samples are stored in the start cache). Returns (updated cache entry, seconds)."""
    from harness.models import cache_lock, settings_hash

    key = start_key(cfg, base)
    path = _cache_dir() / f"start-{key}.json"
    g = _grad_settings(cfg)
    with cache_lock(f"passrate-start-{key}"):
        data = json.loads(path.read_text())
        prompts = data["prompts"]
        need = [p for p in pids if not prompts[p]["correct"] and prompts[p].get("extra", 0) < g["resample"]]
        if not need or g["resample"] <= 0:
            return data, 0.0
        t0 = time.time()
        by_id = {e.id: (split, e) for split in ("train", "test") for e in getattr(task, split)}
        s = {**_settings(cfg), "temperature": g["resample_temperature"]}
        model, tok = loader.get()
        for p in tqdm(need, desc="correct rollouts", leave=False):
            # one seed per prompt: the samples do not depend on which other prompts needed more
            extra = _sample_entries(model, tok, task, [by_id[p]], s, g["resample"], int(settings_hash(p, 8), 16),
                                    "")
            prompts[p]["correct"] = extra[p]["correct"]
            prompts[p]["extra"] = g["resample"]
        _write_json(path, data)
        return data, time.time() - t0


def _safe(pid: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in pid)


def gradient_sketches(cfg: DictConfig, start: dict, pids: list[str], texts: dict[str, str], loader: _Base
                      ) -> tuple[dict[str, tuple[np.ndarray, float, int, list[dict]]], float]:
    """Count sketch of the base-model gradient of each prompt's correct rollouts (cached per prompt and base).
    Returns ({prompt id: (sketch, exact gradient norm, completion tokens, rollouts used)}, seconds)."""
    from harness.models import cache_lock, settings_hash
    from harness.unlearn.gradsim import CountSketch, gradient_params, loglik_gradient_sketch

    g = _grad_settings(cfg)
    gkey = settings_hash({"start": start["key"], **{k: g[k] for k in ("dim", "seed", "params")}})
    gdir = _cache_dir() / f"grad-{gkey}"
    gdir.mkdir(exist_ok=True)
    prompts = start["prompts"]
    todo: dict[str, tuple[Path, list[dict]]] = {}
    for p in pids:
        rollouts = prompts[p]["correct"][: g["max_rollouts"]]
        if rollouts:
            h = settings_hash([r.get("ids") or r["text"] for r in rollouts], 10)
            todo[p] = (gdir / f"{_safe(p)}-{h}.npz", rollouts)
    out, t0, sketch, names = {}, time.time(), None, None
    with cache_lock(f"passrate-grad-{gkey}"):
        for p, (path, rollouts) in todo.items():
            if not path.exists():
                model, tok = loader.get()
                if sketch is None:
                    sketch = CountSketch(g["dim"], g["seed"])
                    names = gradient_params(model, g["params"])
                vec, norm, ntok = loglik_gradient_sketch(model, tok, texts[p], rollouts, names, sketch)
                tmp = path.with_name(path.stem + f".tmp{os.getpid()}.npz")
                np.savez(tmp, sketch=vec.astype(np.float32), norm=norm, n_tokens=ntok)
                tmp.replace(path)
            z = np.load(path)
            out[p] = (z["sketch"], float(z["norm"]), int(z["n_tokens"]), rollouts)
    return out, (time.time() - t0) if sketch is not None else 0.0


# --- the run hook ----------------------------------------------------------------------------------------


def passrates_for_run(cfg: DictConfig, job_dir: Path, merged, tok, task, base) -> Path:
    """After training: ``prompts.csv`` (pass@1 at start and end, rollouts and correct rollouts seen, class),
    and for RLVR runs the gradient sketches of the rewarded training prompts (``grad_sketch.npz``,
    ``correct_rollouts.jsonl``). Timings and class counts go to ``passrate.json``."""
    job_dir = Path(job_dir)
    s, g = _settings(cfg), _grad_settings(cfg)
    tau = float(cfg.passrate.get("tau", 0.1))
    objective = cfg.objective.name
    loader = _Base(cfg, base)
    timings: dict[str, float] = {}

    start, timings["start"] = start_passrates(cfg, task, base, loader)
    t0 = time.time()
    examples = _examples(task, s["splits"])
    merged.eval()
    end = _sample_entries(merged, tok, task, examples, s, s["k"], s["seed"], "pass@1 end")
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

    if objective == "rlvr" and g["enabled"]:
        rewarded = [r["prompt_id"] for r in rows if r["split"] == "train" and r["correct_seen"] > 0]
        start, timings["topup"] = topup_correct(cfg, task, base, rewarded, loader)
        texts = {e.id: e.prompt for e in task.train}
        sketches, timings["grad"] = gradient_sketches(cfg, start, rewarded, texts, loader)
        ids = sorted(sketches)
        np.savez(job_dir / "grad_sketch.npz", ids=np.array(ids, dtype=str),
                 sketch=np.stack([sketches[p][0] for p in ids]) if ids else np.zeros((0, g["dim"]), np.float32),
                 norm=np.array([sketches[p][1] for p in ids]), n_tokens=np.array([sketches[p][2] for p in ids]),
                 n_rollouts=np.array([len(sketches[p][3]) for p in ids]), dim=g["dim"], seed=g["seed"],
                 params=g["params"])
        with (job_dir / "correct_rollouts.jsonl").open("w") as fh:
            for p in ids:
                for r in sketches[p][3]:
                    fh.write(json.dumps({"prompt_id": p, "source": "base_sample", "text": r["text"],
                                         "eos": r["eos"]}) + "\n")
        for r in rows:
            r["grad"] = int(r["prompt_id"] in sketches)

    with (job_dir / "prompts.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=PROMPTS_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    counts: dict[str, int] = {}
    for r in rows:
        if r["split"] == "train":
            counts[r["class"]] = counts.get(r["class"], 0) + 1
    (job_dir / "passrate.json").write_text(json.dumps({
        "start_key": start["key"], "tau": tau, "settings": s, "grad_sim": g, "train_classes": counts,
        "seconds": {k: round(v, 2) for k, v in timings.items()}}, indent=1))
    loader.model = None
    return job_dir / "prompts.csv"
