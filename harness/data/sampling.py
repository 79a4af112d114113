"""Keyed sampling: rollouts that depend on the run's seed and on *which* completion of the global batch they are,
never on how the batch was split over processes or padded into generate calls.

Why: with torch's sampler, the tokens a completion gets depend on the order in which the batch consumes the
random stream, so the same seed on 1 and on 2 processes samples different rollouts, and an RLVR run is not
the same experiment at any world size (issue 17). Here each completion's next token is the Gumbel-max sample

    argmax_v  log softmax(logits / T)_v + G_v,   G_v = -log(-log U_v),

which is an exact draw from softmax(logits / T), with the uniforms U drawn from a generator seeded by
(run seed, generate call, global row, decoding step): the k-th completion of the global batch gets the same
noise whichever process samples it. The draw is made by greedy decoding through a ``LogitsProcessor``, so
TRL's own generation path (``unwrapped_model.generate``) runs unchanged; :func:`keyed_generate` wraps that
one method of the policy model. torch has no per-row generator for ``multinomial``, hence the few lines here.

Rows are numbered as TRL lays out a generation batch: the global batch is cut into contiguous per-process
slices in rank order (accelerate's batch sharding), so global row = (call × world + rank) × rows + i.
"""

from __future__ import annotations

import copy
import hashlib
import weakref
from pathlib import Path
from typing import Any

from harness.core import dist
from harness.core.engine import current_engine, engine  # noqa: F401 (the engine context, re-exported)

# objective.sampler: keyed (this module) | torch (the library's own multinomial sampling). Imports nothing
# heavy at module level, so validation reads this tuple without loading torch.
SAMPLERS = ("keyed", "torch")


def row_seed(*key: int) -> int:
    """A 63-bit seed from integers (stable across processes and Python runs, unlike ``hash``)."""
    return int.from_bytes(hashlib.blake2b(repr(key).encode(), digest_size=8).digest(), "little") >> 1


class KeyedGumbel:
    """Turns greedy decoding into sampling at ``temperature`` with per-row keyed noise (module docstring); a
    ``transformers`` logits processor (any callable ``(input_ids, scores) -> scores`` is one)."""

    def __init__(self, seed: int, call: int, rows: list[int], temperature: float = 1.0):
        self.seed, self.call, self.rows, self.temperature = int(seed), int(call), list(rows), float(temperature)
        self.step = 0  # decoding step within this generate call (the prompt's padded length is not world-invariant)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if scores.shape[0] != len(self.rows):
            raise ValueError(f"keyed sampling: {scores.shape[0]} rows but {len(self.rows)} keys")
        logp = torch.log_softmax(scores.float() / self.temperature, dim=-1)
        noise = torch.empty_like(logp)
        for i, row in enumerate(self.rows):
            gen = torch.Generator(device=logp.device).manual_seed(row_seed(self.seed, self.call, row, self.step))
            noise[i].uniform_(generator=gen)
        self.step += 1
        # U in (0, 1): uniform_ can return 0 exactly, whose Gumbel value would be -inf
        tiny = torch.finfo(noise.dtype).tiny
        return logp - torch.log(-torch.log(noise.clamp_(min=tiny, max=1 - 1e-7)))


def _check_plain(cfg: Any) -> None:
    """Keyed sampling implements temperature only: refuse settings it would silently ignore."""
    bad = {k: getattr(cfg, k, None) for k in ("top_k", "top_p", "min_p", "repetition_penalty", "typical_p")}
    neutral = {"top_k": (None, 0), "top_p": (None, 1.0), "min_p": (None, 0.0), "repetition_penalty": (None, 1.0),
               "typical_p": (None, 1.0)}
    off = {k: v for k, v in bad.items() if v not in neutral[k]}
    if off:
        raise ValueError(f"objective.sampler=keyed samples at a temperature only; got {off} "
                         "(use objective.sampler=torch for other sampling settings)")


def keyed_generate(model: Any, seed: int) -> Any:
    """Make ``model.generate`` sample by :class:`KeyedGumbel` whenever it is asked to sample (greedy calls, e.g.
    the held-out accuracy, pass through). Returns ``model`` (its ``generate`` is an instance attribute now)."""
    from transformers import LogitsProcessorList

    original = model.generate
    calls = {"n": 0}

    def generate(*args: Any, generation_config: Any = None, **kwargs: Any) -> Any:
        cfg = copy.deepcopy(generation_config if generation_config is not None else model.generation_config)
        rest = cfg.update(**kwargs)  # generation settings given as keywords join the config; inputs stay
        if not cfg.do_sample:
            return original(*args, generation_config=generation_config, **kwargs)
        _check_plain(cfg)
        n = int(cfg.num_return_sequences or 1)
        if n > 1:  # greedy decoding takes one sequence per row: expand the rows as sampling would
            for key in ("input_ids", "attention_mask"):
                if key in rest:
                    rest[key] = rest[key].repeat_interleave(n, dim=0)
            cfg.num_return_sequences = 1
        ids = rest.get("input_ids", args[0] if args else None)
        rows = ids.shape[0]
        first = (calls["n"] * dist.world_size() + dist.rank()) * rows
        proc = KeyedGumbel(seed, calls["n"], list(range(first, first + rows)), cfg.temperature or 1.0)
        calls["n"] += 1
        cfg.do_sample, cfg.temperature, cfg.top_k, cfg.top_p, cfg.min_p = False, None, None, None, None
        extra = LogitsProcessorList([*(rest.pop("logits_processor", None) or []), proc])
        return original(*args, generation_config=cfg, logits_processor=extra, **rest)

    model.generate = generate
    return model


def plain_generate(model: Any) -> Any:
    """Undo :func:`keyed_generate`: ``model.generate`` is the class's own again (after training, measurements
    sample with their own seeds)."""
    model.__dict__.pop("generate", None)
    return model


# --- measurements through vLLM (objective.use_vllm=true) ----------------------------------------------------
# The prompt filter, pass rates, pass@k, KL's samples and lm-eval sample many completions from a fixed model; with
# vLLM on, they go through a vLLM engine built on the model's checkpoint on disk instead of HF ``generate``. A
# model is sampled through vLLM only if the harness knows where its weights are on disk (:func:`remember`): a base
# loaded from a checkpoint, or a run's merged model after it was saved; anything else raises rather than sampling
# some other weights. Not run here (vLLM needs a GPU): see docs/distributed.md.

_ON_DISK: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def remember(model: Any, checkpoint: str | Path | None) -> None:
    """``model``'s weights are those of ``checkpoint`` (None: they are not on disk, e.g. after training)."""
    if checkpoint is None:
        _ON_DISK.pop(model, None)
    else:
        _ON_DISK[model] = str(checkpoint)


def checkpoint_of(model: Any) -> str:
    try:
        return _ON_DISK[model]
    except (KeyError, TypeError):
        raise RuntimeError("vLLM sampling needs the model's weights on disk; this model's are not "
                           "(a harness bug: the run saves its merged model before measuring with vLLM)") from None


def vllm_completions(model: Any, tok: Any, examples: list, k: int, temperature: float, max_new_tokens: int,
                     seed: int) -> dict[str, list[dict]]:
    """``k`` completions per example sampled by vLLM from ``model``'s checkpoint, in the shape of
    :func:`sample_completions` (text, token ids up to and including EOS, eos)."""
    import gc

    import torch
    from vllm import LLM, SamplingParams

    llm = LLM(model=checkpoint_of(model), seed=int(seed), dtype=str(next(model.parameters()).dtype).split(".")[-1],
              gpu_memory_utilization=0.3, enforce_eager=True)
    params = SamplingParams(n=int(k), temperature=float(temperature), top_p=1.0, max_tokens=int(max_new_tokens),
                            seed=int(seed))
    out: dict[str, list[dict]] = {}
    eos = tok.eos_token_id
    for e, result in zip(examples, llm.generate([e.prompt for e in examples], params)):
        rows = []
        for c in result.outputs:
            ids = list(c.token_ids)
            finished = c.finish_reason == "stop"
            if finished and eos is not None and (not ids or ids[-1] != eos):
                ids.append(eos)
            rows.append({"text": c.text, "ids": ids, "eos": finished})
        out[e.id] = rows
    del llm
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return out


def sample_completions(model, tok, examples, k: int = 8, temperature: float = 0.7, max_new_tokens: int = 16,
                       batch_size: int = 64, seed: int = 0, desc: str = "pass@1") -> dict[str, list[dict]]:
    """K sampled completions per example, batched over prompts x samples: per example id a list of
    ``{"text", "ids" (completion token ids, up to and including EOS), "eos" (finished with EOS)}``."""
    import torch
    from tqdm import tqdm

    with torch.no_grad():
        if current_engine() == "vllm":
            return vllm_completions(model, tok, examples, k, temperature, max_new_tokens, seed)
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
