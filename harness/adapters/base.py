"""The adapter interface and the update ΔW every adapter yields.

An adapter prepares a trainable model from the base, and after training hands back a model whose weights
are the *merged* result, and the update ΔW of every analyzed matrix (:meth:`Adapter.delta`):

- ``merged_difference``: W_merged − W_original in fp32 (full, sparse, and peft layers whose merge is not
  additive, e.g. DoRA). Always against the original weights saved before the adapter touched the model.
- ``lora_factors_fp64``: LoRA-family layers (LoRA, PiSSA, MiLoRA, MiCA): s·(B A − B₀ A₀) in float64 from
  the factors, B₀ A₀ the initial adapter. An fp32 merge adds rounding noise of ~2⁻²⁴·|W0| per entry, which
  swamps the spectrum of a small low-rank update (a rank-8 update of effective rank 6.06 reads 9.2 at
  ‖ΔW‖/‖W0‖ = 5e-6) and makes a zero-step PiSSA/MiLoRA update full-rank; this one is exactly 0 at step 0.
  For PiSSA/MiLoRA the base is the residual R = W0 − s·B₀A₀ rounded to the model dtype, so the merged model
  is W0 + ε + ΔW with ε = R + s·B₀A₀ − W0 that init rounding (recorded as ``init_residual_rel``).
- ``peft_delta_weight_fp64``: other peft layers whose merge adds ``get_delta_weight`` to the base (LoHa,
  LoKr, VeRA): get_delta_weight(θ) − get_delta_weight(θ₀), both evaluated in float64.
- ``weight_difference``: a matrix outside every adapter layer (frozen): its weight minus the original.
"""

from __future__ import annotations

import contextlib
import copy
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

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

    def delta(self, model: torch.nn.Module, original: dict[str, torch.Tensor], names: list[str],
              merged: torch.nn.Module | None = None) -> Delta:
        """ΔW of ``names`` after training ``model`` (from :meth:`prepare`); ``merged`` is
        :meth:`merged`'s result when the caller has it. Default: the merged difference."""
        merged = self.merged(model) if merged is None else merged
        return Delta(merged_delta(original, merged, names), dict.fromkeys(names, MERGED))

    def learning_rate(self, objective: str) -> float:
        lr = self.cfg.lr
        if objective not in lr:
            raise ValueError(f"adapter {self.name!r} has no default lr for objective {objective!r}; set objective.lr")
        return float(lr[objective])


# How a matrix's ΔW was computed (written to run.json and the delta's metadata; see the module docstring).
MERGED, WEIGHT, LORA, PEFT_DELTA = "merged_difference", "weight_difference", "lora_factors_fp64", "peft_delta_weight_fp64"


@dataclass
class Delta:
    """ΔW per analyzed matrix (fp32, on the CPU) and how each was computed."""

    weights: dict[str, torch.Tensor]
    methods: dict[str, str]
    #: ‖R + D(θ₀) − W0‖_F / ‖W0‖_F over the exact-formula layers (0 for LoRA; PiSSA/MiLoRA: the init's
    #: rounding of the residual): how far the trained model's function is from W0 + ΔW. None: no such layer.
    init_residual_rel: float | None = None

    def info(self) -> dict:
        """What run.json records: the method (``mixed`` when matrices differ), matrices per method and ε."""
        counts = dict(Counter(self.methods.values()))
        out: dict = {"delta_method": next(iter(counts)) if len(counts) == 1 else "mixed", "delta_methods": counts}
        if self.init_residual_rel is not None:
            out["init_residual_rel"] = self.init_residual_rel
        return out


def merged_delta(
    original: dict[str, torch.Tensor], merged: torch.nn.Module, names: list[str]
) -> dict[str, torch.Tensor]:
    """ΔW = merged − original for ``names``, in fp32."""
    state = merged.state_dict()
    return {k: (state[k].detach().float().cpu() - original[k].float().cpu()).contiguous() for k in names}


def clone_state(model: torch.nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
    """W0 of ``names``, copied to the CPU (the device's memory stays the training's)."""
    state = model.state_dict()
    return {k: state[k].detach().to("cpu", copy=True) for k in names}


class PeftAdapter(Adapter):
    """Any peft method: subclasses build the ``PeftConfig``; merging goes through peft's own merge."""

    def peft_config(self, model: torch.nn.Module):
        raise NotImplementedError

    def after_init(self, model: torch.nn.Module) -> None:
        """Hook for inits peft lacks (MiLoRA)."""

    adapter_name = "default"

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        from peft import get_peft_model

        # Seeds are set before the adapter is built (TRL seeds only after), so inits are reproducible.
        torch.manual_seed(self.seed)
        pm = get_peft_model(model, self.peft_config(model))
        self.after_init(pm)
        # θ₀ of every layer with an exact ΔW formula (the adapter's own size: a few MB).
        self.initial = {name: {k: p.detach().clone() for k, p in adapter_params(layer, self.adapter_name).items()}
                        for name, layer in exact_layers(pm, self.adapter_name).items()}
        if self.residual_base:
            # With beta > 0, TRL's GRPOTrainer copies the initial adapter into a frozen "ref" adapter and
            # takes the KL reference with it active: residual + initial adapter = W0, the original model.
            # It creates that adapter from this config, so the config must not re-run the residual init
            # (PiSSA would then rewrite the already-residual base a second time).
            pm.peft_config["default"].init_lora_weights = True
        return pm

    def merged(self, model: torch.nn.Module) -> torch.nn.Module:
        return copy.deepcopy(model).merge_and_unload(adapter_names=[self.adapter_name])

    def delta(self, model: torch.nn.Module, original: dict[str, torch.Tensor], names: list[str],
              merged: torch.nn.Module | None = None) -> Delta:
        """Exact ΔW = D(θ) − D(θ₀) in float64 where the layer's merge is additive (see the module
        docstring), the merged difference elsewhere."""
        base = model.get_base_model()
        exact = exact_layers(model, self.adapter_name)
        tuned = {f"{n}.weight" for n, m in base.named_modules() if _is_tuner(m)}
        weights: dict[str, torch.Tensor] = {}
        methods: dict[str, str] = {}
        eps2 = w02 = 0.0
        with torch.no_grad():
            for name in names:
                if name in exact:
                    layer = exact[name]
                    now = delta_weight64(layer, self.adapter_name)
                    init = delta_weight64(layer, self.adapter_name, self.initial[name])
                    weights[name] = (now - init).float().cpu()
                    methods[name] = LORA if _is_lora(layer) else PEFT_DELTA
                    # ε = R + D(θ₀) − W0: zero unless the init rewrote the base (PiSSA, MiLoRA)
                    w0 = original[name].to(init.device, torch.float64)
                    eps2 += float((layer.get_base_layer().weight.to(torch.float64) + init - w0).pow(2).sum())
                    w02 += float(w0.pow(2).sum())
                elif name not in tuned:  # outside every adapter layer: frozen, its weight is the final one
                    weights[name] = base.get_parameter(name).detach().float().cpu() - original[name].float()
                    methods[name] = WEIGHT
            rest = [n for n in names if n not in methods]
            if rest:
                weights.update(merged_delta(original, self.merged(model) if merged is None else merged, rest))
                methods.update(dict.fromkeys(rest, MERGED))
        rel = (eps2 / w02) ** 0.5 if w02 > 0 else None
        return Delta({n: weights[n] for n in names}, methods, rel)


def _is_tuner(module: torch.nn.Module) -> bool:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return isinstance(module, BaseTunerLayer)


def _is_lora(layer: torch.nn.Module) -> bool:
    from peft.tuners.lora import LoraLayer

    return isinstance(layer, LoraLayer)


def additive(layer: torch.nn.Module, adapter: str) -> bool:
    """Whether peft merges ``layer`` as base + get_delta_weight(adapter), so that ΔW is that difference.

    LoRA without a variant, or with MiCA's (its merge is vanilla LoRA's); LoHa and LoKr (lycoris); VeRA.
    DoRA rescales the merged weight by a magnitude, OFT/BOFT rotate it, so they are not additive.
    """
    from peft.tuners.lora import LoraLayer
    from peft.tuners.lycoris_utils import LycorisLayer
    from peft.tuners.vera import VeraLayer

    if isinstance(layer, LoraLayer):
        from peft.tuners.lora.variants import MiCALinearVariant

        variant = layer.lora_variant.get(adapter)
        return variant is None or isinstance(variant, MiCALinearVariant)
    return isinstance(layer, (LycorisLayer, VeraLayer))


def exact_layers(model: torch.nn.Module, adapter: str = "default") -> dict[str, torch.nn.Module]:
    """Layers of a peft model with an exact ΔW formula, by the name of their weight in the plain model."""
    return {f"{n}.weight": m for n, m in model.get_base_model().named_modules()
            if _is_tuner(m) and adapter_params(m, adapter) and additive(m, adapter)}


def adapter_params(layer: torch.nn.Module, adapter: str) -> dict[str, torch.nn.Parameter]:
    """The parameters of ``adapter`` in one peft layer (names relative to the layer)."""
    return {k: p for k, p in layer.named_parameters()
            if not k.startswith("base_layer.") and adapter in k.split(".")}


@contextlib.contextmanager
def _as_float64(layer: torch.nn.Module, adapter: str, values: dict[str, torch.Tensor] | None) -> Iterator[None]:
    """Temporarily give the adapter's parameters (``values`` when given, e.g. θ₀) and the layer's own buffers
    (VeRA's shared random projections) float64 data; every original tensor is put back afterwards."""
    saved: list[tuple[torch.Tensor, torch.Tensor]] = []
    try:
        targets = list(adapter_params(layer, adapter).items())
        targets += [(k, b) for k, b in layer.named_buffers() if not k.startswith("base_layer.")]
        for k, t in targets:
            src = values[k] if values is not None and k in values else t.data
            dev = t.device if t.device.type != "mps" else torch.device("cpu")  # MPS has no float64
            saved.append((t, t.data))
            t.data = src.to(dev, torch.float64)
        yield
    finally:
        for t, data in saved:
            t.data = data


def delta_weight64(layer: torch.nn.Module, adapter: str = "default",
                   values: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """peft's ``get_delta_weight`` of one layer evaluated in float64 (for LoRA: s·B A), at the current
    parameters or at ``values`` (e.g. the initial θ₀)."""
    with _as_float64(layer, adapter, values):
        return layer.get_delta_weight(adapter).to(torch.float64)
