"""The adapter interface and the merged update every adapter yields.

An adapter prepares a trainable model from the base, and after training hands back a model whose weights
are the *merged* result. The update ΔW = W_merged − W_original is always taken against the original
weights saved before the adapter touched the model: for PiSSA/MiLoRA, whose init rewrites the base into a
residual, comparing with the residual would be wrong.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from omegaconf import DictConfig

from harness.weights import PROJECTIONS, analyzed_weights  # noqa: F401 (the one rule; re-exported)

REGISTRY: dict[str, type[Adapter]] = {}


def register(name: str) -> Callable[[type[Adapter]], type[Adapter]]:
    def deco(cls: type[Adapter]) -> type[Adapter]:
        REGISTRY[name] = cls
        cls.name = name
        return cls

    return deco


class Adapter:
    """Base class. Subclasses implement :meth:`prepare`; :meth:`merged` defaults to the model itself."""

    name = "base"
    #: True when the init rewrites the base weights (PiSSA, MiLoRA): the KL reference needs special care.
    residual_base = False

    def __init__(self, cfg: DictConfig, seed: int = 0):
        self.cfg = cfg
        self.seed = seed

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """Return the model to train (seeded by ``self.seed``)."""
        raise NotImplementedError

    def merged(self, model: torch.nn.Module) -> torch.nn.Module:
        """A plain model whose weights are the merged result of training (may share storage with ``model``)."""
        return model

    def learning_rate(self, objective: str) -> float:
        lr = self.cfg.lr
        if objective not in lr:
            raise ValueError(f"adapter {self.name!r} has no default lr for objective {objective!r}; set objective.lr")
        return float(lr[objective])


def merged_delta(
    original: dict[str, torch.Tensor], merged: torch.nn.Module, names: list[str]
) -> dict[str, torch.Tensor]:
    """ΔW = merged − original for ``names``, in fp32."""
    state = merged.state_dict()
    return {k: (state[k].detach().float() - original[k].float()).contiguous() for k in names}


def clone_state(model: torch.nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
    state = model.state_dict()
    return {k: state[k].detach().clone() for k in names}


class PeftAdapter(Adapter):
    """Any peft method: subclasses build the ``PeftConfig``; merging goes through peft's own merge."""

    def peft_config(self, model: torch.nn.Module):
        raise NotImplementedError

    def after_init(self, model: torch.nn.Module) -> None:
        """Hook for inits peft lacks (MiLoRA)."""

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        from peft import get_peft_model

        # Seeds are set before the adapter is built (TRL seeds only after), so inits are reproducible.
        torch.manual_seed(self.seed)
        pm = get_peft_model(model, self.peft_config(model))
        self.after_init(pm)
        if self.residual_base:
            # With beta > 0, TRL's GRPOTrainer copies the initial adapter into a frozen "ref" adapter and
            # takes the KL reference with it active: residual + initial adapter = W0, the original model.
            # It creates that adapter from this config, so the config must not re-run the residual init
            # (PiSSA would then rewrite the already-residual base a second time).
            pm.peft_config["default"].init_lora_weights = True
        return pm

    def merged(self, model: torch.nn.Module) -> torch.nn.Module:
        return copy.deepcopy(model).merge_and_unload(adapter_names=["default"])
