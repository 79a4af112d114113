"""Exact ΔW of LoRA-family adapters (issue 12, item 4): s·(B A − B₀ A₀) in float64 from the factors.

The fp32 merge W_merged − W0 carries rounding noise of ~2⁻²⁴·|W0| per entry; these tests pin down what the
residual inits really store, that a zero-step update is exactly 0, that the exact ΔW agrees with the merged
difference to within that rounding, and that its effective rank is the one the factors give.
"""

from __future__ import annotations

import pytest
import torch

from harness.analysis.geometry.metrics import rank_metrics
from harness.analysis.geometry.spectra import gram_decomp
from harness.data.models import load_model
from harness.train.adapters import analyzed_weights, build_adapter, merged_delta
from harness.train.adapters.base import (
    LORA,
    MERGED,
    PEFT_DELTA,
    adapter_params,
    clone_state,
    delta_weight64,
    exact_layers,
)
from tests.conftest import compose

U32 = 2.0**-24  # unit roundoff of float32
RESIDUAL = ["pissa", "milora"]
LORA_FAMILY = ["lora", "pissa", "milora"]


def prepared(name: str, base, *overrides: str):
    """(adapter, peft model, analyzed names, original weights, tokenizer) at init."""
    cfg = compose("model=tiny", f"adapter={name}", *overrides)
    model, tok = load_model(base)
    names = analyzed_weights(model.state_dict())
    original = clone_state(model, names)
    adapter = build_adapter(cfg.adapter, seed=0)
    return adapter, adapter.prepare(model), names, original, tok


def train_steps(pm, tok, lr: float, steps: int = 2) -> None:
    """A couple of plain AdamW steps on a causal-LM loss (the objective does not matter here)."""
    opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    ids = tok(["Calculate 12 + 30.\nAnswer: 42", "Calculate 7 + 5.\nAnswer: 12"], return_tensors="pt",
              padding=True)
    for _ in range(steps):
        pm(**ids, labels=ids["input_ids"]).loss.backward()
        opt.step()
        opt.zero_grad()


def factors(layer, initial: dict[str, torch.Tensor]):
    """(s, B, A, B₀, A₀) of one LoRA layer, float64."""
    f = {k: v.double() for k, v in initial.items()}
    return (layer.scaling["default"], layer.lora_B["default"].weight.double(),
            layer.lora_A["default"].weight.double(), f["lora_B.default.weight"], f["lora_A.default.weight"])


def eff_rank_from_factors(layer, initial: dict[str, torch.Tensor]) -> float:
    """Effective rank of s·(B A − B₀ A₀) from its (≤ 2r)-dimensional core: with [B, B₀] = Q₁R₁ and
    [A; A₀]ᵀ = Q₂R₂, ΔW = Q₁ (R₁ diag(s, −s) R₂ᵀ) Q₂ᵀ, so σ(ΔW) = σ of that small core, in float64."""
    s, b, a, b0, a0 = factors(layer, initial)
    q1, r1 = torch.linalg.qr(torch.cat([b, b0], 1))
    q2, r2 = torch.linalg.qr(torch.cat([a, a0], 0).T)
    signs = torch.cat([torch.full((b.shape[1],), s), torch.full((b0.shape[1],), -s)]).double()
    core = torch.linalg.svdvals(r1 @ torch.diag(signs) @ r2.T)
    m, n = b.shape[0], a.shape[1]
    sd = torch.cat([core, core.new_zeros(min(m, n) - core.numel())])
    return rank_metrics(sd[None], m, n)["eff_rank"].item()


def eff_rank(d: torch.Tensor) -> float:
    """The analyzer's effective rank of a stored ΔW (σ from its float64 Gram, as ``batch_metrics`` does)."""
    m, n = d.shape
    return rank_metrics(gram_decomp(d.double()[None]).S, m, n)["eff_rank"].item()


@pytest.mark.parametrize("name", RESIDUAL)
def test_residual_init_stores_w0_minus_scaled_initial_product(name, tiny_base):
    """What the PiSSA (peft) and MiLoRA (ours) inits store, with a scaling s = alpha/r = 2 ≠ 1.

    A₀, B₀: float32, s·B₀A₀ = the top-r (PiSSA) / bottom-r (MiLoRA) singular part of W0 (peft divides σ by
    s before splitting √σ between the factors). The residual R: PiSSA = fl32(W0 − (s·B₀) @ A₀) computed in
    float32, bit for bit; MiLoRA = fl32(W0 − s·B₀A₀ in float64). So R + s·B₀A₀ − W0 is the init's rounding
    only — a few units of 2⁻²⁴·|W0|, not zero — and ΔW must be taken from the factors, not from R.
    """
    adapter, pm, names, original, _ = prepared(name, tiny_base, "adapter.r=4", "adapter.alpha=8")
    layers = exact_layers(pm)
    assert set(layers) == set(names)
    for k in names:
        layer, w0 = layers[k], original[k]
        s, b0, a0 = layer.scaling["default"], layer.lora_B["default"].weight, layer.lora_A["default"].weight
        assert s == 2.0 and b0.dtype == a0.dtype == torch.float32
        r = layer.get_base_layer().weight.detach()
        if name == "pissa":
            torch.testing.assert_close(r, (w0.float() - (s * b0) @ a0).to(w0.dtype), rtol=0, atol=0)
        else:
            expect = (w0.double() - s * (b0.double() @ a0.double())).to(w0.dtype)
            torch.testing.assert_close(r, expect, rtol=0, atol=0)
        u, sv, vh = torch.linalg.svd(w0.double(), full_matrices=False)
        part = slice(0, 4) if name == "pissa" else slice(-4, None)
        svd_part = (u[:, part] * sv[part]) @ vh[part]
        torch.testing.assert_close(s * b0.double() @ a0.double(), svd_part, rtol=0, atol=1e-5)
        eps = (r.double() + s * b0.double() @ a0.double() - w0.double()).abs()
        # PiSSA: fp32 product rounding (r terms) + one fp32 subtraction; MiLoRA: one rounding of R to
        # nearest, ½ ulp(R) ≤ 2⁻²⁴·|R| (the 1e-6 covers the float64 arithmetic of this check)
        bound = (U32 * (r.double().abs() + 6 * s * (b0.double().abs() @ a0.double().abs()))
                 if name == "pissa" else U32 * (1 + 1e-6) * r.double().abs())
        assert (eps <= bound).all(), k
        assert eps.max() > 0  # the residual is not exactly W0 − s·B₀A₀: the merged difference is not 0
    info = adapter.delta(pm, original, names).info()
    assert 0 < info["init_residual_rel"] < 10 * U32


@pytest.mark.parametrize("name", LORA_FAMILY + ["mica", "loha", "vera"])
def test_zero_steps_give_exactly_zero(name, tiny_base):
    """prepare() then ΔW without training: every entry exactly 0.0, where the fp32 merge of PiSSA/MiLoRA
    gives an update of nearly full effective rank."""
    adapter, pm, names, original, _ = prepared(name, tiny_base)
    delta = adapter.delta(pm, original, names)
    assert set(delta.weights) == set(names)
    for k, d in delta.weights.items():
        assert d.dtype == torch.float32
        assert (d == 0.0).all(), k
    assert set(delta.methods.values()) == {PEFT_DELTA if name in ("loha", "vera") else LORA}
    if name in RESIDUAL:
        noisy = merged_delta(original, adapter.merged(pm), names)
        for k, d in noisy.items():  # R + s·B₀A₀ rounds back to W0 in only ~80 % of entries; the rest is
            assert eff_rank(d) > min(d.shape) / 2, k  # noise of (nearly) full effective rank
    else:
        assert delta.init_residual_rel == 0.0  # the base is untouched: R = W0 exactly


def magnitude(layer, values: dict[str, torch.Tensor]) -> torch.Tensor:
    """peft's delta formula evaluated at |θ| (and |buffers|): for the sums of products it consists of (LoRA
    s·B A, VeRA (λ_b B)(λ_d A), LoHa s·(B₁A₁)∘(B₂A₂)) this is the sum of |terms| that rounding errors scale
    with."""
    own = {k: b for k, b in layer.named_buffers() if not k.startswith("base_layer.")}
    return delta_weight64(layer, "default", {k: v.abs() for k, v in {**own, **values}.items()})


@pytest.mark.parametrize("name", LORA_FAMILY + ["mica", "loha", "vera"])
def test_exact_delta_matches_the_merge_within_fp32_rounding(name, tiny_base):
    """After two optimizer steps, |exact − (W_merged − W0)| ≤ the merge's float32 roundings: the adapter's
    product (r-term sums, Hadamard products: 2r + 2 roundings at most), the init's residual, the add to R and
    the subtraction of W0 — each u = 2⁻²⁴ times the magnitude it rounds. LoRA family: the exact ΔW is also
    s·(B A − B₀ A₀) computed here independently, to fp32 storage precision."""
    adapter, pm, names, original, tok = prepared(name, tiny_base)
    train_steps(pm, tok, lr=1e-2 if name == "vera" else 1e-3)  # VeRA trains only scaling vectors
    delta = adapter.delta(pm, original, names)
    merged = adapter.merged(pm)
    layers = exact_layers(pm)
    diff = merged_delta(original, merged, names)
    for k in names:
        d, w0, w1 = delta.weights[k].double(), original[k].double(), merged.state_dict()[k].double()
        assert d.abs().max() > 100 * U32 * w0.abs().max(), k  # a real update, far above the rounding
        layer = layers[k]
        now = {n: p.detach() for n, p in adapter_params(layer, "default").items()}
        prods = magnitude(layer, now) + magnitude(layer, adapter.initial[k])
        bound = U32 * ((2 * layer.r["default"] + 2) * prods + w0.abs() + w1.abs() + d.abs())
        err = (d - diff[k].double()).abs()
        assert (err <= bound).all(), (k, (err / bound).max().item())
        if name not in ("loha", "vera"):
            s, b, a, b0, a0 = factors(layer, adapter.initial[k])
            torch.testing.assert_close(d, s * (b @ a - b0 @ a0), rtol=U32, atol=0)  # float64, stored as fp32


@pytest.mark.parametrize("name", LORA_FAMILY)
def test_effective_rank_of_a_tiny_update_is_exact(name, tiny_base):
    """A rank-2 adapter (ΔW of rank ≤ 2 for LoRA, ≤ 4 for the residual inits) moved by a tiny step
    (‖ΔW‖/‖W0‖ ≈ 1e-5): the analyzer's effective rank of the stored exact ΔW equals the one computed from the
    factors, while the fp32 merged difference reads it too high (its rounding noise is full-rank)."""
    adapter, pm, names, original, tok = prepared(name, tiny_base, "adapter.r=2", "adapter.alpha=4")
    train_steps(pm, tok, lr=1e-6)
    delta = adapter.delta(pm, original, names)
    noisy = merged_delta(original, adapter.merged(pm), names)
    layers = exact_layers(pm)
    excess = []
    for k in names:
        rel = (delta.weights[k].norm() / original[k].norm()).item()
        assert 1e-7 < rel < 1e-3, (k, rel)
        want = eff_rank_from_factors(layers[k], adapter.initial[k])
        assert 1.0 <= want <= (2 if name == "lora" else 4) + 1e-9
        assert eff_rank(delta.weights[k]) == pytest.approx(want, abs=1e-4), k
        excess.append(eff_rank(noisy[k]) - want)
    assert max(excess) > 0.05  # the merge's noise shows at this size: what the exact ΔW avoids


def test_dora_falls_back_to_the_merged_difference(tiny_base):
    """DoRA's merge rescales by a magnitude (not additive): its ΔW is the merged difference, and says so."""
    adapter, pm, names, original, tok = prepared("dora", tiny_base)
    train_steps(pm, tok, lr=1e-3)
    merged = adapter.merged(pm)
    delta = adapter.delta(pm, original, names, merged=merged)
    assert delta.info()["delta_method"] == MERGED and delta.init_residual_rel is None
    for k, d in merged_delta(original, merged, names).items():
        assert torch.equal(delta.weights[k], d)


def test_matrices_outside_the_adapter_are_exactly_unchanged(tiny_base):
    """LoRA on q/v only: the other projections are frozen weights, ΔW exactly 0, without merging."""
    adapter, pm, names, original, tok = prepared("lora", tiny_base, "adapter.target_modules=[q_proj,v_proj]")
    train_steps(pm, tok, lr=1e-3)
    delta = adapter.delta(pm, original, names)
    info = delta.info()
    assert info["delta_method"] == "mixed"
    assert info["delta_methods"] == {LORA: 4, "weight_difference": 10}  # 2 layers x (2 | 5) projections
    for k, d in delta.weights.items():
        assert (d == 0).all() == (delta.methods[k] != LORA), k
