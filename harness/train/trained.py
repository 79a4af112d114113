"""The trained model whole, on the main process, whatever the distributed engine trained it with; and what the
run's ``run.json`` records about that engine.

- single process and DDP: every rank holds the whole model; the main process measures its own copy.
- FSDP2 (transformers' load-time sharding, ``dist.fsdp=true``, which runs on CPUs and GPUs; or accelerate's FSDP
  plugin, GPUs only): parameters are DTensor shards. The full fp32 values are gathered one tensor at a time
  (``DTensor.full_tensor()``, a collective every rank joins), kept on the main process's CPU, and loaded into a
  fresh, unsharded copy of the run's model (the base with the same adapter built with the same seed, so
  LoRA-family ΔW keeps its exact formula from the factors). FSDP1 goes through accelerate's full state dict.
- DeepSpeed: ZeRO-3 leaves size-0 placeholders in ``param.data``, and with bf16 every stage casts the module in
  place, so the module's weights are not the trained fp32 values; the fp32 master weights are read from the
  optimizer (``deepspeed.utils.safe_get_full_fp32_param``, a collective under ZeRO-3) — the values the
  optimizer stepped, so ΔW carries no bf16 rounding. Not run here (no DeepSpeed on CPU): see docs/distributed.md.
"""

from __future__ import annotations

from typing import Any

import torch

from harness.core import dist


def engine(trainer: Any) -> str:
    """``single`` | ``DDP`` | ``FSDP1`` | ``FSDP2`` | ``DeepSpeed ZeRO-<stage>`` (what trained this run)."""
    from accelerate.utils import DistributedType

    acc = trainer.accelerator
    kind = acc.distributed_type
    if any(is_dtensor(p) for p in trainer.model.parameters()):
        return "FSDP2"
    if kind == DistributedType.FSDP:
        return f"FSDP{getattr(acc.state.fsdp_plugin, 'fsdp_version', 1)}"
    if kind == DistributedType.DEEPSPEED:
        return f"DeepSpeed ZeRO-{acc.state.deepspeed_plugin.zero_stage}"
    return "DDP" if acc.num_processes > 1 else "single"


def describe(trainer: Any, obj: Any) -> dict[str, Any]:
    """What ``run.json`` records as ``distributed``: world size, engine, devices of every rank (a collective),
    the effective mixed precision, and the batch per device, per optimizer step and globally."""
    import torch.distributed as tdist

    args = trainer.args
    per_device, accum = int(args.per_device_train_batch_size), int(args.gradient_accumulation_steps)
    devices = dist.gather(str(trainer.accelerator.device))
    out: dict[str, Any] = {
        "world_size": dist.world_size(), "engine": engine(trainer),
        "backend": tdist.get_backend() if tdist.is_initialized() else None, "devices": devices,
        "mixed_precision": str(trainer.accelerator.mixed_precision),
        "per_device_batch": per_device, "grad_accum": accum, "global_batch": per_device * accum * dist.world_size(),
    }
    if obj.get("num_generations"):  # the group-sampling trainers count completions
        out["global_batch_unit"] = "completions"
        out["global_prompts_per_step"] = out["global_batch"] // int(obj.num_generations)
    else:
        out["global_batch_unit"] = "examples"
    return out


def is_dtensor(t: Any) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(t, DTensor)


def full_tensors(state: dict[str, torch.Tensor], names: list[str] | None = None) -> dict[str, torch.Tensor] | None:
    """``state`` (or its ``names``) as whole tensors on the main process's CPU (None elsewhere): DTensor shards
    are gathered one at a time (collectives: every rank calls this, with the same names in the same order)."""
    keep = dist.is_main()
    out: dict[str, torch.Tensor] = {}
    for name in names if names is not None else list(state):
        value = state[name]
        if is_dtensor(value):
            value = value.full_tensor()
        if keep:
            out[name] = value.detach().to("cpu", copy=True)
    return out if keep else None


def sharded(trainer: Any) -> bool:
    """True when the main process's module does not hold the trained fp32 weights whole (FSDP, DeepSpeed)."""
    return engine(trainer).startswith(("FSDP", "DeepSpeed"))


def full_state(trainer: Any) -> dict[str, torch.Tensor] | None:
    """The trained model's full state dict (fp32 where it trained in fp32) on the main process's CPU, None on the
    other ranks. Every rank must call it (the gathers are collectives)."""
    kind = engine(trainer)
    keep = dist.is_main()
    out: dict[str, torch.Tensor] = {}
    if kind == "FSDP2":
        return full_tensors(trainer.model.state_dict())
    if kind == "FSDP1":
        state = trainer.accelerator.get_state_dict(trainer.model_wrapped)  # full, on rank 0
        out = {k: v.detach().cpu() for k, v in state.items()} if keep else {}
    elif kind.startswith("DeepSpeed"):
        from deepspeed import zero
        from deepspeed.utils import safe_get_full_fp32_param

        module = trainer.model_wrapped.module
        for name, p in module.named_parameters():
            if p.requires_grad:
                value = safe_get_full_fp32_param(p)  # the optimizer's fp32 master (gathered under ZeRO-3)
            else:
                with zero.GatheredParameters([p], modifier_rank=None):
                    value = p.data.detach().clone()
            if keep:
                out[name] = value.cpu()
        for name, b in module.named_buffers():
            if keep:
                out[name] = b.detach().cpu().clone()
    else:
        raise ValueError(f"full_state: {kind} keeps the whole model on every rank")
    return out if keep else None


def final_model(trainer: Any, trained: torch.nn.Module, adapter: Any, cfg: Any, base: Any) -> tuple[Any, Any]:
    """(model, adapter) holding the trained weights whole on the main process, (None, None) on the others.

    Unsharded engines: the model that trained (its DDP wrapper is not used again). Sharded ones: the full state
    gathered into a fresh copy of the run's model on the CPU (:func:`full_state`)."""
    if not sharded(trainer):
        return (trained, adapter) if dist.is_main() else (None, None)
    state = full_state(trainer)
    if state is None:
        return None, None
    from harness.data import models
    from harness.train.adapters import build_adapter

    fresh, _ = models.load_base(cfg.model, base, "cpu")
    rebuilt = build_adapter(cfg.adapter, seed=cfg.seed)
    model = rebuilt.prepare(fresh)
    expected = set(model.state_dict())
    missing = expected - set(state)
    if missing:
        raise RuntimeError(f"the gathered state lacks {len(missing)} tensors of the model, e.g. {sorted(missing)[:3]}")
    # Keys the trainer added (TRL's frozen "ref" adapter copy for a KL reference) are not part of the run's model.
    model.load_state_dict({k: v for k, v in state.items() if k in expected})
    return model, rebuilt
