"""The extrapolated model is the base plus the stored ΔŴ_T, exactly (hand-written file on the real tiny model)."""

from __future__ import annotations

import torch
from safetensors.torch import save_file

from harness.data.models import load_model
from harness.measure.extrapolated import extrapolated_model
from harness.train.adapters import analyzed_weights
from tests.conftest import compose


def test_extrapolated_model_is_base_plus_stored_delta(tmp_path, tiny_base):
    cfg = compose("model=tiny", "model.device=cpu")
    w0, _ = load_model(tiny_base)
    names = analyzed_weights(w0.state_dict())
    gen = torch.Generator().manual_seed(0)
    delta = {n: torch.randn(w0.get_parameter(n).shape, generator=gen) * 1e-2 for n in names[:3]}
    save_file(delta, str(tmp_path / "extrapolated.safetensors"))
    model, _ = extrapolated_model(cfg, tiny_base, tmp_path / "extrapolated.safetensors")
    for n in names:
        expect = w0.get_parameter(n) + delta[n] if n in delta else w0.get_parameter(n)
        torch.testing.assert_close(model.get_parameter(n), expect, rtol=0, atol=0)
