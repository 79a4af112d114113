"""Sparse masks: built on the weight's device, and the principal mask is the analyzer's, bit for bit."""

from __future__ import annotations

import pytest
import torch

from harness.analysis.geometry.metrics import Settings, batch_metrics
from harness.analysis.geometry.spectra import gram_decomp
from harness.train.adapters import build_adapter
from harness.train.adapters.sparse import CRITERIA, build_mask
from tests.conftest import compose


@pytest.mark.parametrize("criterion", CRITERIA)
def test_mask_on_the_weights_device(criterion: str) -> None:
    """Regression: masks were built on the CPU and indexed with indices on the model's device, which fails
    on CUDA (no GPU here: the meta device shows where each tensor lives; the old code returned CPU masks)."""
    w = torch.empty(40, 30, device="meta")
    mask = build_mask(w, 0.1, criterion, torch.Generator().manual_seed(0), rank=4, alpha=0.2)
    assert mask.device == w.device and mask.dtype == torch.bool and mask.shape == w.shape


@pytest.mark.parametrize("criterion", CRITERIA)
def test_random_masks_do_not_depend_on_the_device(criterion: str) -> None:
    """The random part is drawn from the CPU generator whatever the device, so a seed gives one mask."""
    w = torch.randn(40, 30, generator=torch.Generator().manual_seed(1))
    a = build_mask(w, 0.1, criterion, torch.Generator().manual_seed(0), rank=4)
    b = build_mask(w, 0.1, criterion, torch.Generator().manual_seed(0), rank=4)
    assert torch.equal(a, b) and int(a.sum()) == 120


def test_prepare_on_a_meta_model(tiny_base) -> None:
    """The adapter's masks and gradient hooks live with the weights (here a model on the meta device)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(tiny_base))
    cfg = compose("model=tiny", "adapter=sparse", "adapter.criterion=low_magnitude").adapter
    adapter = build_adapter(cfg, seed=0)
    adapter.prepare(model)
    assert adapter.masks and all(m.device.type == "meta" for m in adapter.masks.values())


def test_principal_mask_is_the_analyzers() -> None:
    """One definition: an update on the sparse adapter's ``non_principal`` entries has mask overlap exactly
    0 with the analyzer's principal mask, and one on its ``principal`` entries at density α exactly 1."""
    g = torch.Generator().manual_seed(2)
    w0 = torch.randn(2, 48, 32, generator=g)  # a batch of two, as the analyzer decomposes them
    settings = Settings(ks=(16,), alpha=0.2, null=False)
    base = gram_decomp(w0.double(), 16)
    for criterion, density, want in (("non_principal", 0.3, 0.0), ("principal", 0.2, 1.0)):
        masks = torch.stack([build_mask(w, density, criterion, g, rank=16, alpha=0.2) for w in w0])
        d = (0.05 * w0.abs() + 1e-2) * masks  # far above the bf16 tolerance: changed = the mask
        out = batch_metrics(w0, d, base, None, settings)
        assert out["mask_overlap_k16"].tolist() == [want, want], criterion
