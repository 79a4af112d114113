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
  LoKr, VeRA, FourierFT; decided by peft's own merge, :func:`additive`): get_delta_weight(θ) −
  get_delta_weight(θ₀), both evaluated in float64.
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

from harness.core.registry import BadValue, Registry, UnknownName, bad_choice
from harness.core.weights import PROJECTIONS, analyzed_weights  # noqa: F401 (the one rule; re-exported)

REGISTRY: Registry[type[Adapter]] = Registry("adapter", "harness.train.adapters", skip=("base",))

#: The keys every adapter config may hold: its name, its kind (the registered class; default: the name) and its
#: default lr per objective. Each kind adds its own (:attr:`Adapter.settings`); any other key is refused.
COMMON_SETTINGS = ("name", "kind", "lr")


def register(name: str) -> Callable[[type[Adapter]], type[Adapter]]:
    def deco(cls: type[Adapter]) -> type[Adapter]:
        cls.name = name
        return REGISTRY.register(name)(cls)

    return deco


class Adapter:
    """Base class. Subclasses implement :meth:`prepare`; :meth:`merged` defaults to the model itself."""

    name = "base"
    #: True when the init rewrites the base weights (PiSSA, MiLoRA): the KL reference needs special care.
    residual_base = False
    #: The settings this kind reads besides :data:`COMMON_SETTINGS`.
    settings: tuple[str, ...] = ()

    def __init__(self, cfg: DictConfig, seed: int = 0):
        self.cfg = cfg
        self.seed = seed

    @classmethod
    def check(cls, cfg: DictConfig, modules: dict[str, type] | None) -> None:
        """Before launch, a plug-in cannot lie about its settings: an unknown key (a typo would otherwise train
        with the default) is refused with the valid ones, then :meth:`validate` checks the values against the
        model's modules (``modules``: name -> class, None when the model is not known before it is built)."""
        valid = sorted({*COMMON_SETTINGS, *cls.settings})
        for key in cfg:
            if key not in valid:
                raise UnknownName(bad_choice(f"setting of adapter {cls.name!r}", str(key), valid)
                                  .removeprefix("error: "))
        cls(cfg).validate(modules)

    def validate(self, modules: dict[str, type] | None) -> None:
        """Raise :class:`BadValue` for a setting the adapter cannot use on this model (cheap: no weights)."""

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

    def parameter_counts(self, model: torch.nn.Module) -> dict[str, int]:
        """What ``run.json`` records as ``parameters``: the model's and the trainable parameters (entries the
        optimizer may change; sparse adapters count their masks)."""
        total = sum(p.numel() for p in model.parameters())
        return {"total": int(total), "trainable": int(sum(p.numel() for p in model.parameters() if p.requires_grad))}

    def init_weights(self, model: torch.nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
        """The analyzed matrices of the prepared model at step 0, as its forward pass uses them (merged for
        adapters), on the CPU. Default: the model's own weights."""
        state = model.state_dict()
        return {n: state[n].detach().float().cpu() for n in names}

    def check_identity(self, model: torch.nn.Module, original: dict[str, torch.Tensor], names: list[str]) -> float:
        """A plug-in cannot lie: the prepared model must be the base at step 0 (ΔW = 0 before training), up to
        the rounding of the model's dtype (PiSSA/MiLoRA rewrite the base into a residual). Raises with the reason
        otherwise (e.g. peft's FourierFT with ``init_weights: false`` starts from a random spectrum)."""
        now = self.init_weights(model, names)
        err2 = sum(float((now[n].double() - original[n].double()).pow(2).sum()) for n in names)
        ref2 = sum(float(original[n].double().pow(2).sum()) for n in names)
        rel = (err2 / ref2) ** 0.5 if ref2 > 0 else 0.0
        dtype = next(iter(original.values())).dtype if original else torch.float32
        allowed = 4 * torch.finfo(dtype).eps if dtype.is_floating_point else 0.0
        if rel > allowed:
            raise ValueError(f"adapter {self.name!r} is not the identity at step 0: the prepared model differs from "
                             f"the base by {rel:.3g} (relative Frobenius; allowed {allowed:.1g} for {dtype}), so "
                             "ΔW would not be what training moved; check its init settings")
        return rel

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

    #: Where the config keeps the target modules (how an error names the key).
    targets_key = "adapter.target_modules"

    def peft_config(self, model: torch.nn.Module | None):
        raise NotImplementedError

    def validate(self, modules: dict[str, type] | None) -> None:
        """peft builds the config (its own checks of every option), and its target modules must match modules
        of this model, by peft's own matching rule."""
        try:
            config = self.peft_config(None)
        except (BadValue, UnknownName):
            raise
        except Exception as exc:  # peft's own refusal (a bad init name, r < 1, ...): one line
            raise ValueError(f"peft refused the config of adapter {self.cfg.get('name')!r}: "
                             f"{' '.join(str(exc).split())}") from None
        if modules is not None:
            check_targets(config, modules, self.targets_key)

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

    def init_weights(self, model: torch.nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
        """Each adapted matrix merged by peft's own ``merge`` on a copy of its layer (one layer at a time, any
        merge rule); matrices outside every adapter layer as they are."""
        base = model.get_base_model()
        layers = {f"{n}.weight": m for n, m in base.named_modules() if _is_tuner(m)}
        out = {}
        with torch.no_grad():
            for name in names:
                if name in layers:
                    layer = copy.deepcopy(layers[name])
                    layer.merge(adapter_names=[self.adapter_name])
                    out[name] = layer.get_base_layer().weight.detach().float().cpu()
                else:
                    out[name] = base.get_parameter(name).detach().float().cpu()
        return out

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


def linear_leaf_names(modules: dict[str, type]) -> list[str]:
    """The distinct last name parts of a model's linear layers (what ``target_modules`` usually lists)."""
    return sorted({n.rsplit(".", 1)[-1] for n, cls in modules.items() if issubclass(cls, torch.nn.Linear)})


def check_targets(config, modules: dict[str, type], key: str) -> None:
    """A peft config's ``target_modules`` must name at least one module of the model: peft otherwise fails
    only after the base has loaded, without naming the real modules."""
    from peft.tuners.tuners_utils import check_target_module_exists
    from peft.utils.constants import INCLUDE_LINEAR_LAYERS_SHORTHAND

    targets = getattr(config, "target_modules", None)
    if targets is None:
        return  # peft picks the architecture's defaults
    if isinstance(targets, str):  # a pattern, or all-linear
        groups = [targets]
    else:  # a list: every entry must match (peft drops one that matches nothing, so a typo would go unseen)
        groups = sorted(targets)
    for target in groups:
        if isinstance(target, str) and target.lower() == INCLUDE_LINEAR_LAYERS_SHORTHAND:
            found = bool(linear_leaf_names(modules))
        else:
            one = copy.copy(config)
            one.target_modules = target if isinstance(targets, str) else {target}
            found = any(check_target_module_exists(one, name) for name in modules)
        if not found:
            raise BadValue(key, target, f"a name matching this model's modules, e.g. "
                                        f"{', '.join(linear_leaf_names(modules))}")


def _is_tuner(module: torch.nn.Module) -> bool:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return isinstance(module, BaseTunerLayer)


def _is_lora(layer: torch.nn.Module) -> bool:
    from peft.tuners.lora import LoraLayer

    return isinstance(layer, LoraLayer)


_ADDITIVE: dict[tuple[type, type], bool] = {}


def additive(layer: torch.nn.Module, adapter: str) -> bool:
    """Whether peft merges ``layer`` as base + get_delta_weight(adapter), so that ΔW is that difference.

    Decided by peft itself, once per layer class (and LoRA variant): on a float64 copy of the layer with random
    adapter parameters, ``merge`` must give base + ``get_delta_weight``. So LoRA (and MiCA's variant), LoHa,
    LoKr, VeRA and FourierFT are additive; DoRA (rescales by a magnitude) and OFT (rotates) are not, and a new
    peft method needs no entry anywhere.
    """
    variant = getattr(layer, "lora_variant", {}).get(adapter) if hasattr(layer, "lora_variant") else None
    key = (type(layer), type(variant))
    if key not in _ADDITIVE:
        _ADDITIVE[key] = _merges_additively(layer, adapter)
    return _ADDITIVE[key]


def _merges_additively(layer: torch.nn.Module, adapter: str) -> bool:
    try:
        probe = copy.deepcopy(layer).to("cpu")
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for t in [*probe.parameters(), *probe.buffers()]:
                if t.is_floating_point():
                    t.data = t.data.to(torch.float64)
            for p in adapter_params(probe, adapter).values():
                if p.is_floating_point():
                    p.data = 0.1 * torch.randn(p.shape, generator=gen, dtype=torch.float64)
            w0 = probe.get_base_layer().weight.detach().clone()
            expected = w0 + probe.get_delta_weight(adapter).to(torch.float64)
            probe.merge(adapter_names=[adapter])
            merged = probe.get_base_layer().weight.detach()
        moved = float((expected - w0).norm())
        return moved > 0 and float((merged - expected).norm()) <= 1e-9 * max(moved, float(w0.norm()))
    except Exception:  # a method without get_delta_weight or a float64 merge: the merged difference it is
        return False


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
            if not t.is_floating_point():  # index buffers (FourierFT's frequencies) stay as they are
                continue
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
