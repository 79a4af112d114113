"""PiSSA: LoRA initialised on the r *largest* singular triplets of W0 (peft's own init), base := residual.
The principal-aligned contrast to MiLoRA."""

import re

from harness.core.registry import BadValue
from harness.train.adapters.base import PeftAdapter, register
from harness.train.adapters.lora import LORA_SETTINGS, lora_config


@register("pissa")
class PiSSA(PeftAdapter):
    residual_base = True
    settings = LORA_SETTINGS

    def validate(self, modules):
        init = self.cfg.get("init", "pissa")
        if not (isinstance(init, str) and re.fullmatch(r"pissa(_niter_\d+)?", init)):
            raise BadValue("adapter.init", init, "pissa | pissa_niter_<n> (peft's PiSSA inits)")
        super().validate(modules)

    def peft_config(self, model):
        # "pissa" is the exact SVD; "pissa_niter_N" the faster randomized one (a setting).
        return lora_config(self.cfg, self.cfg.get("init", "pissa"))
