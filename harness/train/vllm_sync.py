"""GRPO/RLOO generation through vLLM (``objective.use_vllm=true``), kept exact for the harness's measurements.

Two things TRL 1.16 does that would make a vLLM run a different experiment from the same run without vLLM:

1. **The frozen base drifts under LoRA-family adapters.** Before each generation TRL pushes the policy's
   weights to vLLM by ``merge_adapter()`` -> read -> ``unmerge_adapter()``: peft adds s·BA into the base weight
   in place and subtracts it again, which in bf16 does not give the base back (simulated, 200 steps: drift
   0.20 x ‖ΔW_LoRA‖, full rank). The model being trained is then no longer W0 + ΔW. :func:`merged_weights`
   yields each merged weight computed out of place (W + s·BA as a new tensor, one layer at a time), so vLLM gets
   the same values and the base is never written; :func:`install` puts it in place of TRL's iterator for
   unsharded engines (single process, DDP). Under FSDP / ZeRO-3 TRL's own path gathers first; there the drift
   stays, and ``run.json``'s ``init_residual_rel`` (‖base + s·B₀A₀ − W0‖/‖W0‖, exactly 0 for LoRA otherwise)
   shows it.
2. **vLLM's sampler ignores the run's seed.** TRL builds the engine with ``seed=process_index``, so seeds 0, 1, 2
   of a study sample the same rollouts. :func:`seeded_engine` gives the engine a seed derived from the run's
   seed and the process index.

Not run here: vLLM needs a GPU, and neither this machine nor the GPU check machine has it installed
(docs/distributed.md says what was tested where).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch


def merged_weights(model: Any, fix_name: Callable[[str], str] = lambda n: n) -> Iterator[tuple[str, torch.Tensor]]:
    """(vLLM name, merged weight) of every parameter of a peft model, as TRL names them, with every adapter layer's
    weight merged out of place (``base + get_delta_weight``, in the base's dtype): the model is not modified."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    tuned = {f"{n}.base_layer.weight": m for n, m in model.named_modules() if isinstance(m, BaseTunerLayer)}
    prefix = getattr(model, "prefix", "lora_")
    for name, param in model.named_parameters():
        if prefix in name or "original_module" in name:  # adapter parameters (merged below), the saved original
            continue
        value = param.data
        layer = tuned.get(name)
        if layer is not None:
            with torch.no_grad():
                delta = sum(layer.get_delta_weight(a) for a in layer.active_adapters if a in layer.scaling)
                value = (value.float() + delta.float()).to(value.dtype) if torch.is_tensor(delta) else value
        vname = name.removeprefix("base_model.model.").replace(".base_layer", "")
        yield fix_name(vname.replace("modules_to_save.default.", "")), value


def install(trainer: Any) -> bool:
    """Replace TRL's merge/unmerge weight iterator of ``trainer``'s vLLM engine by :func:`merged_weights` (peft
    models on unsharded engines). Returns whether it did."""
    from accelerate.utils import is_peft_model

    gen = getattr(trainer, "vllm_generation", None)
    if gen is None or not is_peft_model(gen.model) or gen._dist.is_fsdp or gen._dist.is_zero3:
        return False
    from torch.distributed.tensor import DTensor

    if any(isinstance(p, DTensor) for p in gen.model.parameters()):  # sharded at load (dist.fsdp): TRL gathers
        return False
    if not hasattr(gen, "_iter_named_params"):  # a TRL whose sync we do not know: say so rather than guess
        raise RuntimeError("this TRL has no VLLMGeneration._iter_named_params; harness.train.vllm_sync needs updating")
    gen._iter_named_params = lambda: merged_weights(gen.model, gen._fix_param_name_to_vllm)
    return True


@contextlib.contextmanager
def seeded_engine(seed: int) -> Iterator[None]:
    """While TRL builds its vLLM engine: the engine's seed is (run seed, process index), not the index alone."""
    import trl.generation.vllm_generation as vg

    original = getattr(vg, "LLM", None)
    if original is None:  # vLLM not installed: TRL refuses use_vllm itself
        yield
        return

    def llm(*args: Any, **kwargs: Any) -> Any:
        kwargs["seed"] = int(seed) * 1_000_003 + int(kwargs.get("seed") or 0)
        return original(*args, **kwargs)

    vg.LLM = llm
    try:
        yield
    finally:
        vg.LLM = original
