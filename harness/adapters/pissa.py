"""PiSSA: LoRA initialised on the r *largest* singular triplets of W0 (peft's own init), base := residual.
The principal-aligned contrast to MiLoRA."""

from harness.adapters.base import PeftAdapter, register
from harness.adapters.lora import lora_config


@register("pissa")
class PiSSA(PeftAdapter):
    residual_base = True

    def peft_config(self, model):
        # "pissa" is the exact SVD; "pissa_niter_N" the faster randomized one (a setting).
        return lora_config(self.cfg, self.cfg.get("init", "pissa"))
