"""pass@1 of prompts, estimated as the mean verifier score over K samples at temperature T."""

from __future__ import annotations

import torch
from tqdm import tqdm


@torch.no_grad()
def sample_scores(model, tok, examples, score, k: int = 8, temperature: float = 0.7, max_new_tokens: int = 16,
                  batch_size: int = 64, seed: int = 0, desc: str = "pass@1") -> dict[str, list[float]]:
    """Scores of K sampled completions per example, batched over prompts x samples."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
    tok.padding_side = "left"
    per_batch = max(1, batch_size // k)
    out: dict[str, list[float]] = {}
    device = next(model.parameters()).device
    for i in tqdm(range(0, len(examples), per_batch), desc=desc, leave=False):
        chunk = examples[i : i + per_batch]
        enc = tok([e.prompt for e in chunk], return_tensors="pt", padding=True).to(device)
        ids = model.generate(**enc, do_sample=True, temperature=temperature, top_p=1.0, top_k=0,
                             max_new_tokens=max_new_tokens, num_return_sequences=k,
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        texts = tok.batch_decode(ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        for j, e in enumerate(chunk):
            out[e.id] = [score(t, e.answer) for t in texts[j * k : (j + 1) * k]]
    return out


def pass_rates(model, tok, examples, score, **kw) -> dict[str, float]:
    """pass@1 per example id (mean score over K samples)."""
    return {pid: sum(s) / len(s) for pid, s in sample_scores(model, tok, examples, score, **kw).items()}
