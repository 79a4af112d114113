"""Forward and reverse KL between the base and a tuned run, on held-out prompts of the training task.

*RL's Razor* (arXiv 2509.04259) ties forgetting to the forward KL(base ‖ tuned) on the training task. Per run:

    forward(x, y) = Σ_t KL(p_base(·|x, y<t) ‖ p_tuned(·|x, y<t)),   reverse: KL(p_tuned ‖ p_base) likewise,

summed over the completion tokens of y (up to and including EOS), **y sampled from the base** (``kl.sample_from``,
default ``base``; ``tuned`` samples from the run instead), ``kl.samples`` samples per prompt at
``kl.temperature`` (1.0: the base's own distribution), averaged over samples and over the first
``kl.n_prompts`` held-out prompts. Each per-token KL is exact over the whole vocabulary from the two models'
logits (no Monte-Carlo estimate of the inner sum); batches of ``kl.batch_size`` sequences, and only the
completion positions' logits are formed (``logits_to_keep``), so memory is batch × completion length × vocab.
The base's samples are drawn once per base (:func:`harness.core.store.once_per_base`: weights hash + settings).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from harness.measure.base import cached_on_base, measurement, write_artifact

SAMPLE_FROM = ("base", "tuned")


def token_kl(logits_p: torch.Tensor, logits_q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact KL(p ‖ q) and KL(q ‖ p) over the last (vocabulary) axis, from unnormalised logits; float64 out.

    log-softmax in float32 (bf16 logits are upcast first), the sum Σ_v p_v (log p_v − log q_v) in float64."""
    lp = torch.log_softmax(logits_p.float(), -1)
    lq = torch.log_softmax(logits_q.float(), -1)
    diff = (lp - lq).double()
    forward = (lp.double().exp() * diff).sum(-1)
    reverse = -(lq.double().exp() * diff).sum(-1)
    return forward, reverse


def _batch(prompts: list[list[int]], completions: list[list[int]], pad: int, device) -> tuple[torch.Tensor, ...]:
    """Left-padded prompt+completion ids (every sequence ends at the right edge), attention mask, position ids
    as generation used them (counted from the first real token), and the completion mask over the last
    ``L = max completion length`` positions."""
    seqs = [p + c for p, c in zip(prompts, completions)]
    width = max(map(len, seqs))
    lmax = max(map(len, completions))
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    attn = torch.zeros_like(ids)
    cmask = torch.zeros((len(seqs), lmax), dtype=torch.bool)
    for i, (s, c) in enumerate(zip(seqs, completions)):
        ids[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
        attn[i, width - len(s):] = 1
        cmask[i, lmax - len(c):] = True
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    return ids.to(device), attn.to(device), pos.to(device), cmask.to(device)


def _completion_logits(model, ids, attn, pos, lmax: int) -> torch.Tensor:
    """Logits predicting the last ``lmax`` tokens of each (right-aligned) sequence: positions −lmax−1 … −2."""
    out = model(input_ids=ids, attention_mask=attn, position_ids=pos, logits_to_keep=lmax + 1, use_cache=False)
    return out.logits[:, :-1]


@torch.no_grad()
def sequence_kls(base, tuned, prompts: list[list[int]], completions: list[list[int]], pad: int = 0,
                 batch_size: int = 16) -> dict[str, np.ndarray]:
    """Per sequence: the forward Σ_t KL(p_base ‖ p_tuned) and reverse Σ_t KL(p_tuned ‖ p_base) over the
    completion tokens, and the number of those tokens. ``prompts``/``completions``: token ids per sequence."""
    device = next(tuned.parameters()).device
    fwd, rev, ntok = [], [], []
    for i in range(0, len(prompts), batch_size):
        p, c = prompts[i:i + batch_size], completions[i:i + batch_size]
        lmax = max(map(len, c))
        if lmax == 0:  # nothing to score in this batch
            fwd += [0.0] * len(p)
            rev += [0.0] * len(p)
            ntok += [0] * len(p)
            continue
        ids, attn, pos, cmask = _batch(p, c, pad, device)
        f, r = token_kl(_completion_logits(base, ids, attn, pos, lmax), _completion_logits(tuned, ids, attn, pos, lmax))
        m = cmask.double()
        fwd += (f * m).sum(-1).tolist()
        rev += (r * m).sum(-1).tolist()
        ntok += cmask.sum(-1).tolist()
    return {"forward": np.array(fwd), "reverse": np.array(rev), "tokens": np.array(ntok, dtype=int)}


# --- the run hook ----------------------------------------------------------------------------------------


def settings(cfg) -> dict:
    """The ``kl`` block's settings."""
    from harness.core.config import block

    k = block(cfg, "kl")
    if k["sample_from"] not in SAMPLE_FROM:
        raise ValueError(f"kl.sample_from must be one of {SAMPLE_FROM}, got {k['sample_from']!r}")
    return {key: k[key] for key in ("n_prompts", "samples", "max_new_tokens", "temperature", "sample_from",
                                    "batch_size", "seed")}


def _sample(model, tok, examples, s: dict, desc: str) -> dict[str, list[list[int]]]:
    from harness.data.sampling import sample_completions

    out = sample_completions(model, tok, examples, k=s["samples"], temperature=s["temperature"],
                             max_new_tokens=s["max_new_tokens"], batch_size=max(s["batch_size"], s["samples"]),
                             seed=s["seed"], desc=desc)
    return {e.id: [c["ids"] for c in out[e.id]] for e in examples}


def base_samples(cfg, examples, base, loader) -> tuple[dict, float]:
    """Token ids of the base's samples per prompt, once per (base weights, task, prompts, settings, dtype):
    (cache entry, seconds spent here)."""
    from omegaconf import OmegaConf

    from harness.core.store import base_key

    s = settings(cfg)
    key = {"task": OmegaConf.to_container(cfg.task, resolve=True), "prompts": [e.id for e in examples],
           "samples": {k: s[k] for k in ("samples", "max_new_tokens", "temperature", "seed")},
           "dtype": cfg.model.get("dtype", "float32")}

    def compute() -> dict:
        model, tok = loader()
        return {"key": base_key(base, key), "ids": _sample(model, tok, examples, s, "KL: base samples")}

    return cached_on_base("kl-samples", base, key, compute)


@measurement("kl", "kl.json", order=50)
def kl_for_run(cfg, job_dir: Path, merged, tok, task, base) -> dict:
    """After training: forward and reverse KL between the base and the merged run on held-out prompts; writes
    ``kl.json`` (means per sample and per token, standard error over prompts, per group and per prompt)."""
    from harness.data.models import load_base

    s = settings(cfg)
    examples = task.test[: s["n_prompts"]]
    device = str(next(merged.parameters()).device)
    loaded: list = []

    def loader():
        if not loaded:
            model, btok = load_base(cfg.model, base, device)
            loaded.extend([model.eval(), btok])
        return loaded[0], loaded[1]

    t0 = time.time()
    merged.eval()
    if s["sample_from"] == "base":
        entry, _ = base_samples(cfg, examples, base, loader)
        samples, samples_key = entry["ids"], entry["key"]
    else:
        samples, samples_key = _sample(merged, tok, examples, s, "KL: run samples"), None
    t_sample = time.time() - t0
    t0 = time.time()
    base_model, _ = loader()
    prompt_ids = {e.id: tok(e.prompt)["input_ids"] for e in examples}  # as sample_completions encoded them
    rows = [(e, y) for e in examples for y in samples[e.id]]
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    kls = sequence_kls(base_model, merged, [prompt_ids[e.id] for e, _ in rows], [y for _, y in rows], pad,
                       s["batch_size"])
    t_kl = time.time() - t0

    per_prompt: dict[str, dict] = {}
    for j, (e, _) in enumerate(rows):
        d = per_prompt.setdefault(e.id, {"group": e.group, "forward": [], "reverse": [], "tokens": 0})
        d["forward"].append(float(kls["forward"][j]))
        d["reverse"].append(float(kls["reverse"][j]))
        d["tokens"] += int(kls["tokens"][j])
    for d in per_prompt.values():
        d["forward"], d["reverse"] = float(np.mean(d["forward"])), float(np.mean(d["reverse"]))
    tokens = int(kls["tokens"].sum())
    out = {
        "definition": "sum over completion tokens t of KL(p(.|x, y<t) || q(.|x, y<t)), exact over the vocabulary; "
                      f"forward: p = base, q = tuned; reverse: p = tuned, q = base; y sampled from the "
                      f"{s['sample_from'].upper()} at T = {s['temperature']} ({s['samples']} per prompt); averaged "
                      "over samples and held-out prompts",
        "samples_from": s["sample_from"], "split": "test", "settings": s, "samples_key": samples_key,
        "n_prompts": len(examples), "n_sequences": len(rows), "tokens": tokens,
        **_means(kls, tokens, [d["forward"] for d in per_prompt.values()], [d["reverse"] for d in per_prompt.values()]),
        "groups": _groups(per_prompt), "per_prompt": per_prompt,
        "seconds": {"samples": round(t_sample, 2), "kl": round(t_kl, 2)},
    }
    return write_artifact(job_dir, "kl.json", out, {f"kl/{k}": v for k, v in out.items() if k.startswith("kl_")})


def _means(kls: dict, tokens: int, fwd_prompts: list[float], rev_prompts: list[float]) -> dict[str, float]:
    """Means per sequence and per token, and the standard error of the per-sequence mean over prompts."""
    n = len(fwd_prompts)
    se = (lambda v: float(np.std(v, ddof=1) / math.sqrt(n))) if n > 1 else (lambda v: math.nan)
    return {"kl_forward": float(kls["forward"].mean()), "kl_reverse": float(kls["reverse"].mean()),
            "kl_forward_per_token": float(kls["forward"].sum() / tokens) if tokens else math.nan,
            "kl_reverse_per_token": float(kls["reverse"].sum() / tokens) if tokens else math.nan,
            "kl_forward_se": se(fwd_prompts), "kl_reverse_se": se(rev_prompts)}


def _groups(per_prompt: dict[str, dict]) -> dict[str, dict]:
    """Mean forward/reverse KL per difficulty group (``Example.group``)."""
    groups: dict[str, list[dict]] = {}
    for d in per_prompt.values():
        groups.setdefault(d["group"] or "-", []).append(d)
    return {g: {"n_prompts": len(ds), "kl_forward": float(np.mean([d["forward"] for d in ds])),
                "kl_reverse": float(np.mean([d["reverse"] for d in ds]))} for g, ds in sorted(groups.items())}
