"""Every adapter: identity at init, trains under both objectives, and the adapter-specific invariants."""

from __future__ import annotations

import pytest
import torch

from harness.data.models import load_model
from harness.train.adapters import analyzed_weights, available, build_adapter, merged_delta
from harness.train.adapters.base import clone_state
from harness.train.adapters.milora import milora_init
from harness.train.adapters.sparse import build_mask, principal_scores
from tests.conftest import ROOT, compose, run_cli

# Every file in conf/adapter/ is tested; `peft` (config given by the user) gets a LoHa config here.
ADAPTERS = sorted(p.stem for p in (ROOT / "harness" / "conf" / "adapter").glob("*.yaml"))
EXTRA = {"peft": ["+adapter.peft_config={_target_:peft.LoHaConfig,r:4,alpha:8,target_modules:all-linear}"]}
# How the built-in adapters' ΔW must come out (adapters/base.py decides from peft's own merge): exact float64
# formulas where the merge is additive. A new adapter YAML needs no entry: the tests then check the method it
# reports.
DELTA_METHOD = {"full": "merged_difference", "sparse": "merged_difference", "dora": "merged_difference",
                "oft": "merged_difference", "lora": "lora_factors_fp64", "pissa": "lora_factors_fp64",
                "milora": "lora_factors_fp64", "mica": "lora_factors_fp64", "loha": "peft_delta_weight_fp64",
                "vera": "peft_delta_weight_fp64", "fourierft": "peft_delta_weight_fp64",
                "peft": "peft_delta_weight_fp64"}


def test_registry_lists_builtin_adapters():
    assert {"full", "lora", "pissa", "milora", "sparse", "peft"} <= set(available())
    assert {"dora", "vera", "loha", "mica"} <= set(ADAPTERS)


@pytest.mark.parametrize("name", ADAPTERS)
def test_identity_at_init(name, tiny_base):
    cfg = compose("model=tiny", f"adapter={name}", *EXTRA.get(name, []))
    model, tok = load_model(tiny_base)
    names = analyzed_weights(model.state_dict())
    original = clone_state(model, names)
    ids = tok(["Calculate 1 + 2.\nAnswer:"], return_tensors="pt")
    before = model(**ids).logits.detach().clone()
    adapter = build_adapter(cfg.adapter, seed=0)
    prepared = adapter.prepare(model)
    after = prepared(**ids).logits.detach()
    torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)
    assert adapter.check_identity(prepared, original, names) <= 4 * torch.finfo(torch.float32).eps  # what a run checks
    delta = adapter.delta(prepared, original, names)
    method = delta.info()["delta_method"]
    assert method == DELTA_METHOD.get(name, method)
    if method in ("merged_difference", "mixed"):  # DoRA's merge renormalizes, OFT's rotates: fp32 rounding remains
        assert max(d.abs().max().item() for d in delta.weights.values()) < 1e-5
    else:  # full and sparse untouched, exact formulas (LoRA family, LoHa, VeRA) exactly 0
        assert all((d == 0).all() for d in delta.weights.values())


@pytest.mark.integration
@pytest.mark.parametrize("objective", ["sft", "rlvr"])
@pytest.mark.parametrize("name", ADAPTERS)
def test_trains_two_steps(name, objective, tmp_path):
    from harness.core.record import RunRecord, read_run
    from harness.launch.run import train_run

    cfg = compose("model=tiny", f"adapter={name}", *EXTRA.get(name, []), f"objective={objective}",
                  "objective.steps=2", "logger=none",
                  # a high lr so that even RLVR's rare non-zero advantages move the weights
                  "objective.lr=0.01")
    rec = RunRecord(tmp_path)
    rec.start(cfg)
    train_run(cfg, tmp_path, rec)
    rec.finish("done")
    from safetensors import safe_open
    from safetensors.torch import load_file

    delta = load_file(str(tmp_path / "delta.safetensors"))
    assert len(delta) == 2 * 7  # 2 layers x 7 projections
    method = read_run(tmp_path)["delta_method"]
    assert method == DELTA_METHOD.get(name, method) and read_run(tmp_path)["delta_methods"] == {method: 14}
    with safe_open(str(tmp_path / "delta.safetensors"), "pt") as f:
        assert f.metadata()["delta_method"] == method
    logged = [line for line in (tmp_path / "train_log.jsonl").read_text().splitlines() if line]
    assert len(logged) == 2
    assert read_run(tmp_path)["steps"] == 2
    if objective == "sft":  # SFT always has a gradient; RLVR on a random model may see only zero rewards
        assert sum(d.abs().sum().item() for d in delta.values()) > 0


def test_milora_spans_smallest_singular_directions():
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(12, 10, bias=False))
    w0 = net[0].weight.detach().clone()
    pm = get_peft_model(net, LoraConfig(r=3, lora_alpha=6, target_modules=["0"]))
    layer = pm.base_model.model[0]
    milora_init(layer)
    u, s, vh = torch.linalg.svd(w0, full_matrices=False)
    b, a = layer.lora_B["default"].weight, layer.lora_A["default"].weight
    # column space of B = span of the 3 smallest left singular vectors; row space of A likewise (right)
    proj_u = u[:, -3:] @ u[:, -3:].T
    torch.testing.assert_close(proj_u @ b, b, atol=1e-5, rtol=1e-5)
    proj_v = vh[-3:].T @ vh[-3:]
    torch.testing.assert_close(a @ proj_v, a, atol=1e-5, rtol=1e-5)
    # scaled B A is exactly the minor rank-3 part, and residual + adapter = W0
    minor = (u[:, -3:] * s[-3:]) @ vh[-3:, :]
    torch.testing.assert_close(layer.scaling["default"] * b @ a, minor, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(layer.base_layer.weight + layer.scaling["default"] * b @ a, w0, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("criterion", ["random", "low_magnitude", "principal", "non_principal"])
def test_sparse_mask_density_and_criterion(criterion):
    torch.manual_seed(0)
    w = torch.randn(40, 30)
    gen = torch.Generator().manual_seed(0)
    mask = build_mask(w, 0.1, criterion, gen, rank=4, alpha=0.2)
    assert mask.sum().item() == round(0.1 * w.numel())  # exact density
    scores = principal_scores(w, 4)
    if criterion == "low_magnitude":
        assert w.abs()[mask].max() <= w.abs()[~mask].min()
    if criterion == "principal":
        assert scores[mask].min() >= scores[~mask].max()
    if criterion == "non_principal":
        princ_cut = torch.topk(scores.flatten(), round(0.2 * w.numel())).values.min()
        assert (scores[mask] < princ_cut).all()


def test_sparse_update_stays_on_mask(tmp_path, tiny_base):
    cfg = compose("model=tiny", "adapter=sparse", "adapter.density=0.1", "objective=sft", "objective.steps=2",
                  "logger=none", "objective.lr=0.01")
    from harness.train.objectives import train

    model, tok = load_model(tiny_base)
    names = analyzed_weights(model.state_dict())
    original = clone_state(model, names)
    adapter = build_adapter(cfg.adapter, seed=0)
    prepared = adapter.prepare(model)
    from harness.data.tasks import build_task

    train("sft", model=prepared, tokenizer=tok, task=build_task(cfg.task), cfg=cfg.objective, lr=0.01, seed=0,
          out_dir=tmp_path)
    delta = merged_delta(original, adapter.merged(prepared), names)
    for k, d in delta.items():
        mask = adapter.masks[k]
        assert (d[~mask] == 0).all(), k
        assert (d[mask] != 0).any(), k


@pytest.mark.parametrize("name", ["pissa", "milora", "lora"])
def test_kl_reference_is_the_original_model(name, tiny_base, tmp_path):
    """With beta > 0, TRL's reference (its frozen 'ref' adapter active) must equal the original W0, also for
    residual-base adapters, whose base alone is not the original model."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer
    from trl.trainer.utils import use_adapter

    cfg = compose("model=tiny", f"adapter={name}")
    model, tok = load_model(tiny_base)
    ids = tok(["Calculate 1 + 2.\nAnswer:"], return_tensors="pt")
    before = model(**ids).logits.detach().clone()
    pm = build_adapter(cfg.adapter).prepare(model)
    args = GRPOConfig(output_dir=str(tmp_path), beta=0.1, use_cpu=True, bf16=False, report_to="none",
                      per_device_train_batch_size=2, num_generations=2, max_completion_length=4)
    GRPOTrainer(model=pm, reward_funcs=[lambda completions, **_: [0.0] * len(completions)], args=args,
                train_dataset=Dataset.from_list([{"prompt": "a"}, {"prompt": "b"}]), processing_class=tok)
    assert "ref" in pm.peft_config
    with torch.no_grad():  # move the trainable adapter: the reference must not follow
        for p in pm.parameters():
            if p.requires_grad:
                p.add_(0.1)
    assert not any(p.requires_grad for n, p in pm.named_parameters() if ".ref." in n)
    with use_adapter(pm, adapter_name="ref"):
        ref = pm(**ids).logits.detach()
    torch.testing.assert_close(ref, before, atol=1e-4, rtol=1e-4)
    assert (pm(**ids).logits - before).abs().max() > 1e-3


@pytest.mark.integration
def test_any_peft_method_from_the_command_line(tmp_path):
    r = run_cli("model=tiny", "logger=none", "objective.steps=1", "adapter=peft",
                "+adapter.peft_config={_target_:peft.LoKrConfig,r:4,target_modules:all-linear}", out=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    from safetensors.torch import load_file

    (run,) = tmp_path.rglob("run.json")
    assert '"done"' in run.read_text()
    delta = load_file(str(run.parent / "delta.safetensors"))
    assert sum(d.abs().sum().item() for d in delta.values()) > 0


FOURIER = "+adapter.peft_config={_target_:peft.FourierFTConfig,n_frequency:16,target_modules:[q_proj,v_proj]"


@pytest.mark.parametrize("init_weights", [False, True])
def test_an_adapter_that_is_not_the_identity_at_init_is_refused(init_weights, tiny_base):
    """peft's FourierFT starts from a random spectrum by default (``init_weights=False``): ΔW would then hold
    that random start (measured 37 x ‖W0‖ on SmolLM2, issue 20). The run refuses it at step 0; with
    ``init_weights=true`` it is the identity and passes."""
    cfg = compose("model=tiny", "adapter=peft", FOURIER + f",init_weights:{str(init_weights).lower()}}}")
    model, _ = load_model(tiny_base)
    names = analyzed_weights(model.state_dict())
    original = clone_state(model, names)
    adapter = build_adapter(cfg.adapter, seed=0)
    prepared = adapter.prepare(model)
    if init_weights:
        assert adapter.check_identity(prepared, original, names) == 0.0
    else:
        with pytest.raises(ValueError, match="'peft' is not the identity at step 0"):
            adapter.check_identity(prepared, original, names)


def test_trainable_parameters_are_counted(tiny_base):
    model, _ = load_model(tiny_base)
    total = sum(p.numel() for p in model.parameters())
    for name, expect in (("full", lambda a, m: total), ("sparse", lambda a, m: sum(int(x.sum()) for x in a.masks.values())),
                         ("lora", lambda a, m: sum(p.numel() for n, p in m.named_parameters() if "lora_" in n))):
        model, _ = load_model(tiny_base)
        adapter = build_adapter(compose("model=tiny", f"adapter={name}").adapter, seed=0)
        prepared = adapter.prepare(model)
        counts = adapter.parameter_counts(prepared)
        assert counts["trainable"] == expect(adapter, prepared) > 0
        assert counts["total"] >= total
