"""eNTK rotation: does RL rescale fixed directions of the empirical NTK while SFT rotates them?

On a fixed probe set of N prompts (the task's held-out split), f_i(θ) = log p_θ(gold answer | prompt_i).
The eNTK Gram matrix is K = J Jᵀ (N×N), J_i = ∂f_i/∂θ over the analyzed matrices (attention and MLP
projections). No P×P matrix, and no P-sized per-example gradient, is ever formed: for a linear layer
y = x Wᵀ the per-example gradient is Σ_t δ_it x_itᵀ, so

    <∂f_i/∂W, ∂f_j/∂W> = Σ_{t,s} (δ_it·δ_js)(x_it·x_js),

computed from the layer's inputs X and output-gradients Δ of one batched backward pass (the examples of a
batch do not interact, so Σ_i f_i gives every example's own δ).

Comparing K at the base and after a run: principal angles between the top-k eigenvector subspaces
("lability": rotation) and the relative change of the top-k eigenvalues ("propensity": rescaling).
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig

from harness.core.linalg import principal_angles
from harness.core.weights import PROJECTIONS
from harness.measure.base import cached_on_base, measurement, write_artifact


def _probe_batch(tok, examples, device):
    """Token ids of prompt+answer, left-padded, with a mask of the answer tokens."""
    seqs, answer_masks = [], []
    for e in examples:
        p = tok(e.prompt, add_special_tokens=False)["input_ids"]
        a = tok(" " + e.answer.strip(), add_special_tokens=False)["input_ids"]
        seqs.append(p + a)
        answer_masks.append([0] * len(p) + [1] * len(a))
    width = max(map(len, seqs))
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    attn = torch.zeros_like(ids)
    amask = torch.zeros_like(ids, dtype=torch.float32)
    for i, (s, m) in enumerate(zip(seqs, answer_masks)):
        ids[i, width - len(s):] = torch.tensor(s)
        attn[i, width - len(s):] = 1
        amask[i, width - len(s):] = torch.tensor(m, dtype=torch.float32)
    return ids.to(device), attn.to(device), amask.to(device)


def answer_logprob(model, ids, attn, amask, inputs_embeds=None) -> torch.Tensor:
    """f_i = Σ log p(answer token | prefix), per example (from ``inputs_embeds`` when given)."""
    if inputs_embeds is None:
        logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1].float()
    else:
        logits = model(inputs_embeds=inputs_embeds, attention_mask=attn).logits[:, :-1].float()
    logp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    return (logp * amask[:, 1:]).sum(-1)


def entk_gram(model, tok, examples, batch_size: int = 16) -> torch.Tensor:
    """The N×N eNTK Gram matrix over the attention/MLP projections of ``model`` (exact)."""
    device = next(model.parameters()).device
    layers = [m for n, m in model.named_modules()
              if isinstance(m, torch.nn.Linear) and n.rsplit(".", 1)[-1] in PROJECTIONS]
    if not layers:
        raise ValueError("no attention/MLP projection layers found for the eNTK")
    captured: dict[int, list] = {}

    def fwd_hook(mod, inp, out):
        key = id(mod)
        captured[key] = [inp[0].detach(), None]
        out.register_hook(lambda g: captured[key].__setitem__(1, g.detach()))

    handles = [m.register_forward_hook(fwd_hook) for m in layers]
    was_training = model.training
    model.eval()
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        # Store per-layer (X, Δ) for all examples: T is short (prompt + answer), so this is small.
        xs: dict[int, list] = {id(m): [] for m in layers}
        ds: dict[int, list] = {id(m): [] for m in layers}
        for i in range(0, len(examples), batch_size):
            ids, attn, amask = _probe_batch(tok, examples[i:i + batch_size], device)
            # weights are frozen: gradients flow from embeddings that require grad, so layer outputs do too
            embeds = model.get_input_embeddings()(ids).detach().requires_grad_(True)
            answer_logprob(model, ids, attn, amask, inputs_embeds=embeds).sum().backward()
            keep = attn.bool()
            for m in layers:
                x, d = captured[id(m)]
                # zero padded positions so they add nothing to the sums
                xs[id(m)].append((x * keep[..., None]).float().cpu())
                ds[id(m)].append((d * keep[..., None]).float().cpu())
        n = len(examples)
        gram = torch.zeros(n, n, dtype=torch.float64)
        for m in layers:
            x = _pad_cat(xs[id(m)])  # N, T, n
            d = _pad_cat(ds[id(m)])  # N, T, m
            t = x.shape[1]
            xx = (x.reshape(n * t, -1) @ x.reshape(n * t, -1).T).view(n, t, n, t)
            dd = (d.reshape(n * t, -1) @ d.reshape(n * t, -1).T).view(n, t, n, t)
            gram += (xx * dd).sum((1, 3)).double()
        return gram
    finally:
        for h in handles:
            h.remove()
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)
        model.train(was_training)


def _pad_cat(chunks: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate batches of different (left-padded) lengths along N, left-padding with zeros."""
    t = max(c.shape[1] for c in chunks)
    return torch.cat([torch.nn.functional.pad(c, (0, 0, t - c.shape[1], 0)) for c in chunks])


def compare_grams(k0: torch.Tensor, k1: torch.Tensor, k: int = 8) -> dict[str, float]:
    """Rotation (principal angles between top-k eigenvector subspaces) and rescaling (eigenvalue change)."""
    k = min(k, k0.shape[0])
    e0, v0 = torch.linalg.eigh(k0.double())
    e1, v1 = torch.linalg.eigh(k1.double())
    e0, v0 = e0.flip(0)[:k], v0.flip(1)[:, :k]
    e1, v1 = e1.flip(0)[:k], v1.flip(1)[:, :k]
    angles = principal_angles(v0, v1)  # the one definition (atan2 of sine and cosine: small angles exact)
    return {
        "entk_k": k,
        "entk_max_angle_deg": float(angles.max()),
        "entk_mean_angle_deg": float(angles.mean()),
        "entk_eig_rel_change": float((e1 - e0).norm() / e0.norm()),
        "entk_top_eig_ratio": float(e1[0] / e0[0]),
        "entk_trace_ratio": float(k1.trace() / k0.trace()),
    }


def plain_copy(model):
    """A fresh model with ``model``'s weights. After a Trainer has driven a model, forward hooks registered on
    its submodules were seen not to fire (transformers 5 / accelerate wrapping); a fresh copy has none of that."""
    from transformers import AutoModelForCausalLM

    fresh = AutoModelForCausalLM.from_config(model.config, dtype=model.dtype)
    fresh.load_state_dict(model.state_dict())
    return fresh.to(next(model.parameters()).device)


def base_gram(model_cfg: DictConfig, base: Path | str, examples: list, batch_size: int = 16,
              device: str = "cpu") -> torch.Tensor:
    """The eNTK Gram of the base on ``examples``, computed once per (base *weights*, probe set, dtype) through
    :func:`harness.core.store.once_per_base`: a checkpoint retrained at the same path gets a new Gram."""
    from harness.data.models import load_base

    def compute() -> torch.Tensor:
        model, tok = load_base(model_cfg, base, device)
        return entk_gram(model, tok, examples, batch_size)

    key = {"probe": [[e.id, e.prompt, e.answer] for e in examples], "dtype": model_cfg.get("dtype", "float32"),
           "v": 2}
    gram, _ = cached_on_base("entk", base, key, compute, save=lambda k, path: torch.save(k, path),
                             load=lambda path: torch.load(path), suffix=".pt")
    return gram


@measurement("entk", "entk.json", order=30)
def entk_for_run(cfg: DictConfig, job_dir: Path, merged, tok, task, base) -> dict[str, float]:
    """Gram at the base (once per base, :func:`base_gram`) and after the run; writes ``entk.json``."""
    from harness.core.config import block

    ec = block(cfg, "entk")
    examples = task.test[: ec["n_probe"]]  # a fixed probe set: the first N held-out prompts
    k0 = base_gram(cfg.model, base, examples, ec["batch_size"], str(next(merged.parameters()).device))
    k1 = entk_gram(plain_copy(merged), tok, examples, ec["batch_size"])
    out = compare_grams(k0, k1, ec["k"])
    out["entk_n_probe"] = len(examples)
    return write_artifact(job_dir, "entk.json", out, out)
