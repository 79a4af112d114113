"""The weights pushed to vLLM for a LoRA-family policy (harness.train.vllm_sync): the same values as peft's merge, and
the frozen base untouched. peft's in-place merge/unmerge, which TRL 1.16 runs before every generation, drifts a
bf16 base; the out-of-place merge leaves it bit-identical. (vLLM itself is not installed here: this tests the
weights, which is what the harness controls.)"""

from __future__ import annotations

import copy

import torch
from peft import LoraConfig, get_peft_model

from harness.data.models import load_model
from harness.train.vllm_sync import merged_weights


def _policy(tiny_base):
    model, _ = load_model(tiny_base, dtype="bfloat16")
    torch.manual_seed(0)
    pm = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights="gaussian"))
    with torch.no_grad():  # a trained adapter: B no longer zero
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    return pm


def _bases(pm) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in pm.named_parameters() if "base_layer" in n}


def test_peft_merge_unmerge_drifts_a_bf16_base(tiny_base):
    """The problem, measured: 50 syncs the TRL way change the frozen base."""
    pm = _policy(tiny_base)
    before = _bases(pm)
    for _ in range(50):
        pm.merge_adapter()
        pm.unmerge_adapter()
    after = _bases(pm)
    drift = sum(float((after[k].float() - before[k].float()).pow(2).sum()) for k in before) ** 0.5
    assert drift > 0


def test_out_of_place_merge_equals_peft_merge_and_keeps_the_base(tiny_base):
    pm = _policy(tiny_base)
    before = _bases(pm)
    reference = dict(copy.deepcopy(pm).merge_and_unload().named_parameters())
    for _ in range(50):
        pushed = dict(merged_weights(pm))
    assert _bases(pm).keys() == before.keys()
    for k, v in _bases(pm).items():
        assert torch.equal(v, before[k])  # bit-identical after 50 syncs
    assert set(pushed) == set(reference)  # vLLM's names: the plain model's
    for name, value in pushed.items():
        assert value.dtype == reference[name].dtype
        # peft merges in place in bf16, this merges in fp32 then rounds once: equal up to one bf16 rounding
        torch.testing.assert_close(value.float(), reference[name].detach().float(), rtol=2 ** -7, atol=1e-6)
    base_of = {n: f"base_model.model.{n.removesuffix('.weight')}.base_layer.weight" for n in pushed}
    merged = [n for n in pushed if base_of[n] in before and not torch.equal(pushed[n], before[base_of[n]])]
    assert len(merged) == len(before)  # every adapted layer is pushed with its update in it
