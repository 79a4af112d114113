"""Sparse fine-tuning: a fixed mask of exact density over the target matrices; only masked entries move.

Criteria (``adapter.criterion``):
- ``random``: uniform over entries;
- ``low_magnitude``: the smallest |W0| entries;
- ``principal``: the largest entries of |W0_k| (W0_k = rank-k reconstruction of W0), for contrast;
- ``non_principal``: uniform over the complement of the principal mask (top-α of |W0_k|, as in
  *The Path Not Taken*).

peft's SHiRA accepts custom masks but fixes their size to r·(m+n) entries, so it cannot express an
arbitrary density; here the mask is applied to the gradient of the full weight instead (AdamW with zero
weight decay then leaves every unmasked entry bit-identical).

The mask is applied by a hook on the weight tensor the layer actually computes with, installed from a forward
pre-hook: a plain model and DDP compute with the Parameter itself, FSDP2 with an unsharded copy it all-gathers
(the Parameter is replaced by a sharded DTensor, whose own hooks never fire), DeepSpeed with the same Parameter
whose data it gathers. In every case the gradient is masked before it is reduced across processes and before
gradient clipping, so the run is the same experiment on any engine.
"""

from __future__ import annotations

import torch

from harness.core.linalg import principal_mask, principal_scores
from harness.core.registry import BadValue
from harness.train.adapters.base import PROJECTIONS, Adapter, linear_leaf_names, register

CRITERIA = ("random", "low_magnitude", "principal", "non_principal")


def _top(scores: torch.Tensor, k: int) -> torch.Tensor:
    """The k largest scores as a boolean mask, on the scores' device (indices and mask on one device)."""
    mask = torch.zeros(scores.numel(), dtype=torch.bool, device=scores.device)
    mask[torch.topk(scores.flatten(), k).indices] = True
    return mask.view_as(scores)


def _uniform(w: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Uniform scores drawn from the (CPU) generator, moved to W's device: the same seed gives the same
    random mask on every device."""
    return torch.rand(w.shape, generator=gen, device=gen.device).to(w.device)


def build_mask(w: torch.Tensor, density: float, criterion: str, gen: torch.Generator,
               rank: int = 16, alpha: float = 0.2) -> torch.Tensor:
    """A boolean mask on W's device with exactly round(density·numel) True entries. The principal mask is
    :func:`harness.core.linalg.principal_mask`, the one the geometry analyzer measures overlap with."""
    k = round(density * w.numel())
    if criterion == "random":
        return _top(_uniform(w, gen), k)
    if criterion == "low_magnitude":
        return _top(-w.detach().float().abs(), k)
    if criterion == "principal":
        return _top(principal_scores(w, rank), k)
    if criterion == "non_principal":
        princ = principal_mask(principal_scores(w, rank), alpha)
        # the complement's size (a meta tensor holds no values: then the nominal size, ties aside)
        free = w.numel() - round(alpha * w.numel()) if princ.is_meta else int((~princ).sum())
        if k > free:
            raise ValueError(f"density {density} exceeds the non-principal share 1-alpha={1 - alpha}")
        return _top(_uniform(w, gen).masked_fill(princ, -1.0), k)
    raise ValueError(f"unknown sparse criterion {criterion!r}; valid: {', '.join(CRITERIA)}")


@register("sparse")
class Sparse(Adapter):
    settings = ("density", "criterion", "principal_rank", "alpha", "target_modules")

    def validate(self, modules: dict[str, type] | None) -> None:
        if self.cfg.get("criterion") not in CRITERIA:
            raise BadValue("adapter.criterion", self.cfg.get("criterion"), " | ".join(CRITERIA))
        targets = self.cfg.get("target_modules")
        if modules is not None and targets is not None:
            leaves = linear_leaf_names(modules)
            for target in targets:  # every entry: one that matched nothing would silently train nothing there
                if target not in leaves:
                    raise BadValue("adapter.target_modules", target,
                                   f"last name parts of this model's linear layers: {', '.join(leaves)}")

    def parameter_counts(self, model: torch.nn.Module) -> dict[str, int]:
        """The masked entries are what trains (the rest of each target matrix gets a zero gradient)."""
        counts = super().parameter_counts(model)
        counts["trainable"] = int(sum(int(m.sum()) for m in self.masks.values()))
        return counts

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        cfg = self.cfg
        gen = torch.Generator().manual_seed(self.seed)
        targets = set(cfg.get("target_modules") or PROJECTIONS)
        self.masks: dict[str, torch.Tensor] = {}
        for p in model.parameters():
            p.requires_grad_(False)
        for name, module in model.named_modules():
            if name.rsplit(".", 1)[-1] not in targets or not isinstance(module, torch.nn.Linear):
                continue
            w = module.weight
            full = w.full_tensor() if _is_dtensor(w) else w.data  # a collective under FSDP: every rank builds
            mask = build_mask(full.detach(), cfg.density, cfg.criterion, gen, cfg.principal_rank, cfg.alpha)
            self.masks[f"{name}.weight"] = mask
            w.requires_grad_(True)
            module.register_forward_pre_hook(_mask_hook(mask))
        return model


def _is_dtensor(t: torch.Tensor) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(t, DTensor)


def _mask_hook(mask: torch.Tensor):
    """A forward pre-hook that masks the gradient of the weight the layer computes with (once per tensor)."""

    def hook(module: torch.nn.Module, args) -> None:  # noqa: ARG001
        w = module.weight
        if w.requires_grad and not getattr(w, "_harness_masked", False) and not _is_dtensor(w):
            m = mask.to(w.device, w.dtype)
            w.register_hook(lambda g: g * m)
            w._harness_masked = True

    return hook
