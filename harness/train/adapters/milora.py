"""MiLoRA: LoRA initialised on the r *smallest* singular triplets of W0, base := residual.

peft has no such init (its ``mica`` init is a different method: frozen minor B, A = 0), so this module does
the few lines it needs, mirroring peft's ``pissa_init`` with the other end of the spectrum.
"""

import torch

from harness.train.adapters.base import PeftAdapter, register
from harness.train.adapters.lora import LORA_SETTINGS, lora_config


def milora_init(layer, adapter: str = "default") -> None:
    """Set A, B of one peft ``LoraLayer`` from the r smallest singular triplets, scaled by √σ, and the base to
    the residual R = W0 − s·B A.

    A and B keep the adapter's dtype (as peft's PiSSA init does); R is computed in float64 from exactly the
    stored A and B and rounded once to the base dtype, so R + s·B A − W0 is that one rounding, ≤ ½ ulp of R.
    """
    base = layer.get_base_layer()
    w = base.weight.data
    r, scale = layer.r[adapter], layer.scaling[adapter]
    # float32 SVD, as peft's PiSSA (float64 doubles the init's time; the exact ΔW does not need it)
    u, s, vh = torch.linalg.svd(w.float(), full_matrices=False)
    ur, sr, vhr = u[:, -r:], s[-r:] / scale, vh[-r:]
    lora_a = (sr.sqrt()[:, None] * vhr).to(layer.lora_A[adapter].weight.dtype)
    lora_b = (ur * sr.sqrt()).to(layer.lora_B[adapter].weight.dtype)
    layer.lora_A[adapter].weight.data = lora_a
    layer.lora_B[adapter].weight.data = lora_b
    base.weight.data = (w.double() - scale * (lora_b.double() @ lora_a.double())).to(w.dtype)


@register("milora")
class MiLoRA(PeftAdapter):
    residual_base = True
    settings = tuple(k for k in LORA_SETTINGS if k != "init")

    def peft_config(self, model):
        return lora_config(self.cfg, True)

    def after_init(self, model) -> None:
        from peft.tuners.lora import LoraLayer

        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, LoraLayer) and "default" in module.lora_A:
                    milora_init(module)
