"""LoRA through peft (rank, alpha, target modules and init as settings)."""

import re

from omegaconf import OmegaConf

from harness.core.registry import BadValue
from harness.train.adapters.base import PeftAdapter, register


def lora_config(cfg, init_lora_weights=True):
    from peft import LoraConfig

    targets = cfg.target_modules
    if not isinstance(targets, str):
        targets = list(OmegaConf.to_container(targets, resolve=True))
    return LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.get("dropout", 0.0),
        target_modules=targets,
        init_lora_weights=init_lora_weights,
        task_type="CAUSAL_LM",
    )


#: The settings of the LoRA-family adapters (lora, pissa; milora has no ``init``: its init is the method).
LORA_SETTINGS = ("r", "alpha", "dropout", "target_modules", "init")


def check_init(value: object) -> None:
    """``init`` must be a value peft's LoraConfig accepts (read from its type, so a new peft init is valid
    without an edit here); peft itself refuses a bad one only when the adapter is built, after the base loads."""
    import typing

    from peft import LoraConfig

    words = [w for arg in typing.get_args(typing.get_type_hints(LoraConfig)["init_lora_weights"])
             for w in typing.get_args(arg) if isinstance(w, str)]
    patterns = [re.escape(w).replace(re.escape("[number of iters]"), r"\d+") for w in words]
    if isinstance(value, bool) or (isinstance(value, str) and any(re.fullmatch(p, value) for p in patterns)):
        return
    raise BadValue("adapter.init", value, " | ".join(["true", "false", *words]))


@register("lora")
class LoRA(PeftAdapter):
    settings = LORA_SETTINGS

    def validate(self, modules):
        check_init(self.cfg.get("init", True))
        super().validate(modules)

    def peft_config(self, model):
        return lora_config(self.cfg, self.cfg.get("init", True))
