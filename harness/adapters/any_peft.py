"""Any peft method from YAML, no code: ``adapter=peft +adapter.peft_config={_target_: peft.LoHaConfig, ...}``.

The config is instantiated with Hydra; training and merging go through peft, so every peft method that can
merge (LoRA variants, DoRA, VeRA, LoHa, LoKr, MiCA, ...) yields its merged ΔW like a built-in adapter.
"""

from hydra.utils import instantiate
from omegaconf import OmegaConf

from harness.adapters.base import PeftAdapter, register


@register("peft")
class AnyPeft(PeftAdapter):
    def peft_config(self, model):
        spec = self.cfg.get("peft_config")
        if spec is None or "_target_" not in spec:
            raise ValueError("adapter=peft needs adapter.peft_config with a _target_, e.g. "
                             "+adapter.peft_config={_target_:peft.LoHaConfig,r:8,target_modules:all-linear}")
        kwargs = OmegaConf.to_container(spec, resolve=True)
        kwargs.setdefault("task_type", "CAUSAL_LM")
        return instantiate(kwargs)
