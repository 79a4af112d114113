"""ΔW surgery: each edit on hand-built matrices with known answers (an exactly rank-1 update is kept whole by
rank-1 truncation; a removed update leaves W0), the edited tiny model's weights, the fraction kept, the checks
before launch, and a real 4-step tiny run with ``surgery.enabled=true`` that writes surgery.json."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from harness.core.linalg import principal_mask, principal_scores
from harness.core.registry import BadValue, UnknownName
from harness.measure.edits import REGISTRY, apply, check, depth_of, site
from harness.measure.edits.null import random_like
from harness.measure.surgery import Surgeon, gains, kept_fraction
from tests.conftest import ROOT, warm_digits, write_digits

M, N = 12, 9


def orthonormal(n: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q


def known_svd(s: list[float], m: int = M, n: int = N, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(Q diag(s) Pᵀ, Q, P) with orthonormal Q (m×m), P (n×n): a matrix whose singular vectors are known."""
    q, p = orthonormal(m, seed), orthonormal(n, seed + 1)
    d = torch.zeros(m, n, dtype=torch.float64)
    d[range(len(s)), range(len(s))] = torch.tensor(s, dtype=torch.float64)
    return q @ d @ p.mT, q, p


W0, Q, P = known_svd([10.0 - i for i in range(N)])  # distinct singular values: the top-k subspaces are defined
SITE = site("model.layers.0.self_attn.q_proj.weight", depth=4)


def run_edit(name: str, delta: torch.Tensor, w0: torch.Tensor = W0, where=None, **params) -> torch.Tensor:
    return apply({"edit": name, "params": params}, delta, w0, where or site(SITE.name, 4))


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / max(float(torch.linalg.vector_norm(b)), 1e-300))


# --- edits: known answers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(M, N), (N, M), (N, N)])
def test_an_exactly_rank_one_update_is_kept_whole_by_rank_one_truncation(shape):
    g = torch.Generator().manual_seed(3)
    u, v = torch.randn(shape[0], 1, generator=g, dtype=torch.float64), torch.randn(1, shape[1], generator=g,
                                                                                   dtype=torch.float64)
    delta = 0.01 * u @ v
    w0 = torch.randn(*shape, generator=g, dtype=torch.float64)
    for k in (1, 4):
        assert rel(run_edit("rank", delta, w0, k=k), delta) < 1e-13, k
    assert torch.equal(run_edit("rank", delta, w0, k=0), torch.zeros(shape, dtype=torch.float64))


def test_rank_k_truncation_of_a_known_spectrum():
    delta, q, p = known_svd([5.0, 3.0, 2.0, 1.0, 0.5], seed=7)
    want = q[:, :2] @ torch.diag(torch.tensor([5.0, 3.0], dtype=torch.float64)) @ p[:, :2].mT
    assert rel(run_edit("rank", delta, k=2), want) < 1e-12
    assert torch.equal(run_edit("rank", delta, k=N), delta)  # full rank: ΔW itself


def test_onto_and_off_the_top_k_subspaces():
    """ΔW = Q B Pᵀ in W0's singular bases: onto_top3 is Q [B₁₁ 0; 0 0] Pᵀ, off_top3 the other three blocks."""
    b = torch.randn(M, N, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    delta = Q @ b @ P.mT
    inside = torch.zeros_like(b)
    inside[:3, :3] = b[:3, :3]
    onto, off = run_edit("onto_topk", delta, k=3), run_edit("off_topk", delta, k=3)
    assert rel(onto, Q @ inside @ P.mT) < 1e-10
    assert rel(off, Q @ (b - inside) @ P.mT) < 1e-10
    assert rel(onto + off, delta) < 1e-14


def test_principal_mask_and_off_mask_split_the_update_exactly():
    w0 = torch.randn(40, 30, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    delta = torch.randn(40, 30, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    on = run_edit("principal_mask", delta, w0, k=4, alpha=0.2)
    off = run_edit("off_mask", delta, w0, k=4, alpha=0.2)
    assert torch.equal(on + off, delta)
    mask = principal_mask(principal_scores(w0, 4), 0.2)  # the analyzer's definition
    assert torch.equal(on != 0, mask) and int(mask.sum()) == round(0.2 * 40 * 30)
    assert torch.equal(on[mask], delta[mask]) and torch.equal(off[~mask], delta[~mask])


def test_random_like_keeps_the_norm_and_is_seeded():
    delta = torch.randn(M, N, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    r = random_like(delta, W0, SITE, seed=0, tag="rank1")
    assert r.shape == delta.shape
    assert float(torch.linalg.vector_norm(r)) == pytest.approx(float(torch.linalg.vector_norm(delta)), rel=1e-12)
    assert torch.equal(r, random_like(delta, W0, SITE, seed=0, tag="rank1"))
    assert not torch.equal(r, random_like(delta, W0, SITE, seed=1, tag="rank1"))
    assert not torch.equal(r, random_like(delta, W0, site("model.layers.1.mlp.up_proj.weight", 4), seed=0,
                                          tag="rank1"))
    assert torch.equal(random_like(torch.zeros(3, 2, dtype=torch.float64), W0, SITE), torch.zeros(3, 2,
                                                                                               dtype=torch.float64))


def test_layer_and_module_edits_keep_exactly_the_named_matrices():
    names = [f"model.layers.{i}.{mod}.weight" for i in range(4)
             for mod in ("self_attn.q_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.down_proj")]
    names.append("model.embed_tokens.weight")
    assert depth_of(names) == 4
    delta = torch.randn(M, N, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    zero = torch.zeros_like(delta)

    def kept(edit: str, **params) -> set[str]:
        out = set()
        for n in names:
            t = run_edit(edit, delta, where=site(n, 4), **params)
            assert torch.equal(t, delta) or torch.equal(t, zero)
            if torch.equal(t, delta):
                out.add(n)
        return out

    assert kept("layers", lo=0.0, hi=0.25) == {n for n in names if ".layers.0." in n}
    assert kept("layers", lo=0.5, hi=1.0) == {n for n in names if ".layers.2." in n or ".layers.3." in n}
    assert kept("module", kind="attn") == {n for n in names if "self_attn" in n}
    assert kept("module", kind="mlp") == {n for n in names if ".mlp." in n}


def test_restore_top():
    """W1 = Q diag(s1) Pᵀ shares W0's singular vectors, order kept: restoring the top r directions gives
    W' = Q diag(s0[:r], s1[r:]) Pᵀ, so T(ΔW) = Q diag(0, …, 0, s1[r:] − s0[r:]) Pᵀ. f = 0 keeps ΔW, f = 1 gives 0."""
    s0 = [10.0 - i for i in range(N)]
    s1 = [s + 0.3 * (i % 3) for i, s in enumerate(s0)]  # still descending and distinct
    w1, _, _ = known_svd(s1)
    delta = w1 - W0
    diff = torch.zeros(M, N, dtype=torch.float64)
    r = math.ceil(0.34 * N)  # = 4
    for i in range(r, N):
        diff[i, i] = s1[i] - s0[i]
    assert rel(run_edit("restore_top", delta, f=0.34), Q @ diff @ P.mT) < 1e-9
    assert torch.equal(run_edit("restore_top", delta, f=0.0), delta)
    assert torch.equal(run_edit("restore_top", delta, f=1.0), delta - (W0 + delta) + W0)
    assert float(torch.linalg.vector_norm(run_edit("restore_top", delta, f=1.0))) < 1e-13


def test_scale_and_the_registry():
    delta = torch.randn(M, N, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    assert torch.equal(run_edit("scale", delta, c=1.0), delta)
    assert torch.equal(run_edit("scale", delta, c=0), torch.zeros_like(delta))
    assert {"rank", "onto_topk", "off_topk", "principal_mask", "off_mask", "layers", "module", "restore_top",
            "random_like", "scale"} <= set(REGISTRY.names())


def test_check_names_the_key_and_what_is_valid():
    check("surgery.edits.rank1", {"edit": "rank", "params": {"k": 1}})
    with pytest.raises(UnknownName, match=r"surgery.edits.x.edit 'rnak' \(did you mean 'rank'\?\)"):
        check("surgery.edits.x", {"edit": "rnak", "params": {"k": 1}})
    with pytest.raises(BadValue, match=r"bad surgery.edits.x.params.k -1; valid: an integer >= 0"):
        check("surgery.edits.x", {"edit": "rank", "params": {"k": -1}})
    with pytest.raises(BadValue, match=r"bad surgery.edits.x.params 'q'; valid: parameters of edit 'rank': k"):
        check("surgery.edits.x", {"edit": "rank", "params": {"q": 1}})
    with pytest.raises(BadValue, match=r"surgery.edits.x.params.k None"):  # required and missing
        check("surgery.edits.x", {"edit": "rank"})
    with pytest.raises(BadValue, match=r"surgery.edits.x.params.kind 'conv'; valid: attn \| mlp"):
        check("surgery.edits.x", {"edit": "module", "params": {"kind": "conv"}})


# --- the fraction kept ---------------------------------------------------------------------------------------


def test_fraction_kept_is_defined_only_for_a_change_told_apart_from_zero():
    ids = [str(i) for i in range(40)]
    base = {"id": {"accuracy": 0.25, "scores": {i: float(j < 10) for j, i in enumerate(ids)}}}
    run = {"id": {"accuracy": 0.75, "n": 40, "scores": {i: float(j < 30) for j, i in enumerate(ids)}}}
    gain = gains({"id": ("id", "t", 40)}, base, run)["id"]
    assert gain["change"] == 0.5 and gain["change_distinguishable"]
    assert kept_fraction(0.75, gain) == (1.0, None)
    assert kept_fraction(0.25, gain) == (0.0, None)
    assert kept_fraction(0.5, gain) == (0.5, None)
    flat = gains({"id": ("id", "t", 40)}, base, {"id": {**run["id"], "accuracy": 0.25, "scores": base["id"]["scores"]}})
    value, why = kept_fraction(0.25, flat["id"])
    assert value is None and "includes 0" in why


# --- the edited model ----------------------------------------------------------------------------------------


def test_tiny_model_rank_one_update_rebuilds_the_run_and_a_removed_update_the_base(tiny_base):
    """On the tiny model, ΔW exactly rank 1 per matrix (as a rank-1 LoRA's): the rank-1 edit writes the same
    weights as ΔW itself (to the last float32 unit), the zero edit exactly W0's; the null keeps each matrix's norm."""
    from harness.data.models import load_model
    from harness.train.adapters import analyzed_weights

    model, _ = load_model(tiny_base)
    state = model.state_dict()
    names = analyzed_weights(state)
    g = torch.Generator().manual_seed(0)
    delta = {n: (1e-2 * torch.randn(state[n].shape[0], 1, generator=g) @ torch.randn(1, state[n].shape[1],
                                                                                      generator=g)) for n in names}
    w0 = {n: state[n].clone() for n in names}
    surgeon = Surgeon(model, delta)
    assert surgeon.ratio(surgeon.edit({"edit": "scale", "params": {"c": 1}})) == pytest.approx(1.0, rel=1e-12)
    whole = {n: state[n].clone() for n in names}
    assert surgeon.ratio(surgeon.edit({"edit": "rank", "params": {"k": 1}})) == pytest.approx(1.0, rel=1e-6)
    for n in names:
        assert (state[n] - whole[n]).abs().max() <= torch.finfo(torch.float32).eps * whole[n].abs().max(), n
    norms = surgeon.edit({"edit": "rank", "params": {"k": 0}})
    assert surgeon.ratio(norms) == 0.0
    assert all(torch.equal(state[n], w0[n]) for n in names)
    norms = surgeon.edit({"edit": "module", "params": {"kind": "mlp"}})
    surgeon.random(norms, 0, "mlp")
    for n in names:
        assert float((state[n].double() - w0[n].double()).norm()) == pytest.approx(norms[n], rel=1e-5, abs=1e-9)


# --- checks before launch ------------------------------------------------------------------------------------


def test_bad_surgery_settings_are_one_line_before_anything_loads():
    from tests.launch.test_validation import errors

    assert errors("model=tiny", "surgery.enabled=true") == []
    assert errors("model=tiny", "surgery.enabled=true", "+surgery.edits.zero={edit:scale,params:{c:0}}") == []
    assert errors("model=tiny", "surgery.enabled=true", "surgery.edits.rank1.params.k=-1") == [
        "error: bad surgery.edits.rank1.params.k -1; valid: an integer >= 0"]
    (line,) = errors("model=tiny", "surgery.enabled=true", "surgery.only=[rank1,rnak4]")
    assert "surgery.only entry 'rnak4' (did you mean 'rank4'?)" in line
    (line,) = errors("model=tiny", "surgery.enabled=true", "surgery.edits.attn=3")
    assert line.startswith("error: bad surgery.edits.attn 3; valid:")


# --- a real run ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def surgery_run(tmp_path_factory):
    """A 4-step rank-1 LoRA SFT run of the warmed tiny model (on 16 digit prompts, lr 0.02: it moves held-out
    accuracy on 32 prompts from 0.31 to 0), eval and surgery on: its job dir."""
    work = tmp_path_factory.mktemp("surgery_run")
    write_digits(work / "digits48.jsonl", 48)
    env = {**os.environ, "HARNESS_OUT": str(work / "out"), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "harness.launch.run", "model=tiny", "logger=none", "entk.enabled=false",
                        "report.on_sweep_end=false", "task=jsonl", "task.path=digits48.jsonl", "task.n_train=16",
                        "task.n_test=32", *warm_digits(16, "digits48.jsonl"), "objective=sft", "objective.steps=4",
                        "++objective.lr=0.02", "adapter=lora", "adapter.r=1", "eval.limit=32",
                        "eval.ood.multiplication=null", "eval.ood.subtraction.n_test=8", "surgery.enabled=true",
                        "surgery.only=[rank1,attn,zero]", "+surgery.edits.zero={edit:scale,params:{c:0}}", "name=sg"],
                       capture_output=True, text=True, timeout=600, env=env, cwd=work)
    assert r.returncode == 0, r.stderr[-3000:]
    (job,) = [p.parent for p in (work / "out" / "sg").glob("*/*/run.json")]
    assert json.loads((job / "run.json").read_text())["status"] == "done"
    return job


@pytest.mark.integration
def test_run_writes_surgery_json(surgery_run):
    out = json.loads((surgery_run / "surgery.json").read_text())
    ev = json.loads((surgery_run / "eval.json").read_text())["tasks"]
    assert set(out["edits"]) == {"rank1", "attn", "zero"} and out["delta_method"]
    gain = out["tasks"]["id"]
    assert gain["run_accuracy"] == ev["id"]["accuracy"] and gain["base_accuracy"] == ev["id"]["base_accuracy"]
    assert gain["change_distinguishable"], gain  # the run moved held-out accuracy beyond noise
    rank1, zero = out["edits"]["rank1"]["tasks"]["id"], out["edits"]["zero"]["tasks"]["id"]
    # a rank-1 LoRA's update is exactly rank 1: rank-1 truncation keeps all of it
    assert out["edits"]["rank1"]["norm_ratio"] == pytest.approx(1.0, rel=1e-6)
    assert rank1["kept"] == pytest.approx(1.0) and rank1["scores"] == ev["id"]["scores"]
    assert rank1["vs_run"]["diff"] == 0 and rank1["vs_run"]["ci"] == [0, 0]
    # removing all of ΔW is the base: 0 % kept, the base's very scores
    assert out["edits"]["zero"]["norm_ratio"] == 0 and zero["kept"] == 0 and zero["scores"] == ev["id"]["base_scores"]
    # the OOD task did not move: no fraction, and the reason says why
    ood = out["edits"]["rank1"]["tasks"]["ood_subtraction"]
    assert ood["kept"] is None and "includes 0" in ood["kept_reason"]
    for entry in out["edits"].values():
        assert entry["random"]["norm_ratio"] == pytest.approx(entry["norm_ratio"])
        assert set(entry["random"]["tasks"]) == {"id", "ood_subtraction"}
        assert entry["seconds"]["eval"] > 0
    assert json.loads((surgery_run / "run.json").read_text())["timings"]["surgery"] > 0
