"""Full fine-tuning: every parameter trains; the merged model is the model itself."""

import torch

from harness.train.adapters.base import Adapter, register


@register("full")
class Full(Adapter):
    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        for p in model.parameters():
            p.requires_grad_(True)
        return model
