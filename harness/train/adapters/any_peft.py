"""Any peft method from YAML, no code: ``adapter=peft +adapter.peft_config={_target_: peft.LoHaConfig, ...}``.

The config is instantiated with Hydra; training and merging go through peft, so every peft method that can
merge (LoRA variants, DoRA, VeRA, LoHa, LoKr, MiCA, ...) yields its merged ΔW like a built-in adapter.
"""

import dataclasses
import importlib

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from harness.core.registry import BadValue, UnknownName, bad_choice
from harness.train.adapters.base import PeftAdapter, register

EXAMPLE = "a peft config with a _target_, e.g. {_target_:peft.LoHaConfig,r:8,target_modules:all-linear}"


@register("peft")
class AnyPeft(PeftAdapter):
    settings = ("peft_config",)
    targets_key = "adapter.peft_config.target_modules"

    def peft_config(self, model):
        spec = self.cfg.get("peft_config")
        if not isinstance(spec, DictConfig) or "_target_" not in spec:
            raise BadValue("adapter.peft_config", OmegaConf.to_container(spec) if spec is not None else None, EXAMPLE)
        kwargs = OmegaConf.to_container(spec, resolve=True)
        kwargs.setdefault("task_type", "CAUSAL_LM")
        return instantiate(kwargs)

    def validate(self, modules: dict[str, type] | None) -> None:
        """The config class must exist and know every option given (an unknown one would be a TypeError deep
        in Hydra's instantiate); then peft builds it (:meth:`PeftAdapter.validate`)."""
        spec = self.cfg.get("peft_config")
        if isinstance(spec, DictConfig) and "_target_" in spec:
            module, _, name = str(spec._target_).rpartition(".")
            try:  # not hydra's get_class, which logs its own error lines before ours
                cls = getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError, ValueError):
                raise BadValue("adapter.peft_config._target_", spec._target_,
                               "an importable peft config class, e.g. peft.LoHaConfig") from None
            if dataclasses.is_dataclass(cls):
                fields = sorted(f.name for f in dataclasses.fields(cls) if f.init)
                for key in spec:
                    if key != "_target_" and key not in fields:
                        raise UnknownName(bad_choice(f"option of {cls.__name__} (adapter.peft_config)", str(key),
                                                     fields).removeprefix("error: "))
        super().validate(modules)
