"""LoRA through peft (rank, alpha, target modules and init as settings)."""

from omegaconf import OmegaConf

from harness.adapters.base import PeftAdapter, register


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


@register("lora")
class LoRA(PeftAdapter):
    def peft_config(self, model):
        return lora_config(self.cfg, self.cfg.get("init", True))
