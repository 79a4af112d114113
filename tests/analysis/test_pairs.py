"""Pair studies on checkpoint pairs built here with a planted geometry (tiny Llama shapes, `harness/data/sources/tiny.py`).

The base's attention/MLP projections are replaced by matrices with a clear spectral gap after k = 16
(:func:`harness.analysis.geometry.synthetic.designed_matrix`); the tuned checkpoints carry updates whose place relative
to W0's principal structure is known by construction (:class:`harness.analysis.geometry.synthetic.Planted`):

- "RLVR" pairs: ΔW = U_⊥ Z V_⊥ᵀ off W0's top-16 singular subspaces *and* off its principal entries, small
  (‖ΔW‖/‖W0‖ = 1e-3: most changes below bf16's resolution, above 1e-5), the three sharing half their direction;
- "SFT" pairs: ΔW = U_k D V_kᵀ + U_⊥ C V_kᵀ, rescaling and tilting the top-16 subspaces (rank ≤ 16), larger.

From that, and nothing else, follow the verdicts asserted below.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file

from harness.analysis.geometry.synthetic import Planted, designed_matrix, write_checkpoint
from harness.claims import CONTRADICTED, INCONCLUSIVE, SUPPORTED
from tests.conftest import ROOT

K = 16


def projections(tensors: dict[str, torch.Tensor]) -> list[str]:
    return [n for n in tensors if n.endswith("_proj.weight")]


def build_base(tiny_base: Path, out: Path, seed: int = 0, dtype: torch.dtype = torch.float32
               ) -> tuple[dict[str, torch.Tensor], dict[str, Planted]]:
    """The tiny Llama checkpoint with designed projections (stored in ``dtype``)."""
    tensors = load_file(str(Path(tiny_base) / "model.safetensors"))
    g = torch.Generator().manual_seed(seed)
    planted = {}
    for name in projections(tensors):
        w0 = designed_matrix(*tensors[name].shape, K, g).to(dtype).float()
        planted[name] = Planted(w0, K)
        tensors[name] = w0.to(dtype)
    write_checkpoint(out, tensors)
    return tensors, planted


def write_tuned(out: Path, base: dict[str, torch.Tensor], update: dict[str, torch.Tensor],
                dtype: torch.dtype = torch.float32) -> Path:
    return write_checkpoint(out, {**base, **{n: (base[n].float() + d).to(dtype) for n, d in update.items()}})


@pytest.fixture(scope="module")
def study(tmp_path_factory, tiny_base) -> Path:
    """3 RLVR-labelled and 3 SFT-labelled pairs of one fp32 base, and the study file listing them."""
    root = tmp_path_factory.mktemp("planted")
    base, planted = build_base(tiny_base, root / "base")
    g = torch.Generator().manual_seed(1)
    shared = {n: torch.randn(p.w0.shape[0] - K, p.w0.shape[1] - K, generator=g) for n, p in planted.items()}
    pairs = []
    for i in range(3):
        upd = {n: p.off_principal(shared[n] + torch.randn(shared[n].shape, generator=g), 1e-3 * float(p.w0.norm()))
               for n, p in planted.items()}
        write_tuned(root / f"rlvr{i}", base, upd)
        pairs.append({"name": f"grpo-{i}", "base": "base", "tuned": f"rlvr{i}", "objective": "rlvr",
                      "algorithm": "GRPO", "dataset": "planted", "dtype": "float32", "group": "tiny"})
    for i in range(3):
        write_tuned(root / f"sft{i}", base, {n: p.principal(g, 1e-2, 0.5) for n, p in planted.items()})
        pairs.append({"name": f"sft-{i}", "base": "base", "tuned": f"sft{i}", "objective": "sft",
                      "dataset": "planted", "group": "tiny"})
    (root / "study.yaml").write_text(yaml.safe_dump({"name": "planted", "pairs": pairs}))
    return root


def claims(out: Path, group: str | None = None) -> dict[str, str]:
    df = pd.read_csv(out / "report" / "claims.csv")
    if group is not None:
        df = df[df["group"] == group]
    assert df["id"].is_unique
    return dict(zip(df["id"], df["verdict"]))


@pytest.mark.integration
def test_readme_command_writes_claims_that_follow_the_planted_truth(study: Path, tmp_path) -> None:
    """Acceptance: `python -m harness.analyze pairs=<file>` over 3 RLVR + 3 SFT pairs of one base."""
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "harness.launch.analyze", f"pairs={study / 'study.yaml'}", f"out={out}"],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    report = (out / "report.md").read_text()
    assert "# Pair study report" in report and "## Claims" in report and "Group `tiny` (6 pairs)" in report
    got = claims(out)
    # P1: SFT rescales the top singular values, RLVR's update has no first-order drift of them
    # P2: RLVR's update has no coupling to the top-k subspaces (no first-order rotation), SFT's tilts them
    # P3: RLVR's update is orthogonal to the top-k block and avoids every principal entry; SFT's lies in it
    # P4: the three RLVR updates share half their direction, and all their changes avoid the principal mask
    # P5.III: RLVR's changes are mostly below bf16's spacing but above 1e-5 (fp32-stored pairs)
    # S1: the planted RLVR update changes every non-principal entry (not sparse) and has rank up to 48 of 64
    #     (numerical-rank fraction 0.75 < 0.9): contradicted; E2: RLVR's rank exceeds SFT's (≤ 16): contradicted
    assert {c: got[c] for c in ("P1", "P2", "P3", "P4", "P5.III", "S1", "E2")} == {
        "P1": SUPPORTED, "P2": SUPPORTED, "P3": SUPPORTED, "P4": SUPPORTED, "P5.III": SUPPORTED,
        "S1": CONTRADICTED, "E2": CONTRADICTED}
    assert set(got) == {"P1", "P2", "P3", "P4", "P5.III", "S1", "E2"}  # the others need training runs
    df = pd.read_csv(out / "report" / "claims.csv")
    assert (df["n"] >= 2).all() and df["estimate [95% CI]"].str.contains("pairs").all()
    for name in ("grpo-0", "sft-2"):
        rec = json.loads((out / name / "run.json").read_text())
        assert rec["status"] == "done" and rec["pair"]["tuned_dtype"] == "float32"
    assert "across pairs of one base" in report and (out / "plots" / "geometry_layers.png").exists()
    assert "stored (base → tuned)" in report and "float32 → float32" in report


# --- planted metrics, one matrix at a time ------------------------------------------------------------------


def metrics_of(w0: torch.Tensor, w1: torch.Tensor) -> dict[str, float]:
    """The analyzer's per-matrix metrics of one stored pair of matrices (W1 − W0 in fp32, as from checkpoints)."""
    from harness.analysis.geometry.metrics import Settings, batch_metrics
    from harness.core.linalg import gram_decomp

    w0, w1 = w0.float(), w1.float()
    out = batch_metrics(w0[None], (w1 - w0)[None], gram_decomp(w0.double()[None], K), None, Settings())
    return {k: float(v[0]) for k, v in out.items()}


@pytest.fixture(scope="module")
def planted_matrix() -> Planted:
    return Planted(designed_matrix(96, 64, K, torch.Generator().manual_seed(3)).float(), K)


def test_update_off_the_top_k_has_no_energy_rotation_or_principal_entry(planted_matrix: Planted) -> None:
    p = planted_matrix
    g = torch.Generator().manual_seed(4)
    d = p.off_principal(torch.randn(96 - K, 64 - K, generator=g), 1e-3 * float(p.w0.norm()))
    assert float(d[p.mask].abs().max()) == 0.0  # the planted truth: no principal entry moves
    m = metrics_of(p.w0, p.w0 + d)
    assert m["energy_k16"] < 1e-8 < m["energy_base_k16"]  # nothing in W0's top-16 block (fp32 storage noise only)
    assert m["angle_mean_k16"] < 1e-3 * m["angle_mean_null_k16"]  # no first-order rotation; a random update tilts
    assert m["mask_overlap_k16"] == 0.0 < m["mask_overlap_null_k16"]
    assert m["wedin_k16"] < 0.01  # the designed gap makes the angles meaningful


def test_update_inside_the_top_k_rescales_its_singular_values(planted_matrix: Planted) -> None:
    """ΔW = U_k D V_kᵀ: σ_i(W1) = σ_i + D_ii exactly, so the drift is known in closed form; the top-k subspace
    does not move; all the energy is in it."""
    p = planted_matrix
    d = p.principal(torch.Generator().manual_seed(5), 1e-2, tilt=0.0)
    w1 = (p.w0 + d).float()
    m = metrics_of(p.w0, w1)
    s0 = torch.linalg.svdvals(p.w0.double())
    expected = float(torch.linalg.norm(torch.linalg.svdvals(w1.double()) - s0) / torch.linalg.norm(s0))
    dk = torch.diagonal(p.u[:, :K].T @ d.double() @ p.v[:, :K])  # the planted rescaling of σ_1..σ_k
    assert expected == pytest.approx(float(torch.linalg.norm(dk) / torch.linalg.norm(s0)), rel=1e-4)
    assert m["drift"] == pytest.approx(expected, rel=1e-6)
    assert m["energy_k16"] == pytest.approx(1.0, abs=1e-5)
    assert m["angle_mean_k16"] < 1e-2 * m["angle_mean_null_k16"]
    assert m["eff_rank"] <= K + 1e-6


def test_sparsity_three_criteria_on_bf16_and_fp32_storage() -> None:
    """A bf16-rounded sparse update on bf16 weights: the three criteria count the same entries; on fp32 weights
    with changes below bf16's spacing they part, each by its own definition (counted here by hand)."""
    g = torch.Generator().manual_seed(6)
    w0 = (torch.randn(48, 40, generator=g) * 0.05).bfloat16().float()
    mask = torch.rand(48, 40, generator=g) < 0.05
    w1 = torch.where(mask, w0 * 1.1 + w0.sign() * 1e-3, w0).bfloat16().float()  # stored in bf16 after the update
    changed = int((w1 != w0).sum())
    assert changed == int(mask.sum()) > 0
    m = metrics_of(w0, w1)
    for key in ("sparsity_bf16", "sparsity_rel1e3", "sparsity_abs"):
        assert m[key] == pytest.approx(1 - changed / w0.numel(), abs=1e-12), key

    fp = (torch.randn(48, 40, generator=g) * 0.05).float()
    small = fp * (1 + 2e-3 * torch.randn(48, 40, generator=g))  # relative 2e-3: around bf16's spacing
    m = metrics_of(fp, small)
    d = small - fp
    same_bf16 = float((fp.bfloat16() == small.bfloat16()).float().mean())
    rel = float((d.abs() <= 1e-3 * torch.maximum(fp.abs(), small.abs())).float().mean())
    absolute = float((d.abs() <= 1e-5).float().mean())
    assert (m["sparsity_bf16"], m["sparsity_rel1e3"], m["sparsity_abs"]) == pytest.approx((same_bf16, rel, absolute))
    assert m["sparsity_bf16"] > m["sparsity_rel1e3"] > m["sparsity_abs"]  # the papers' count is the loosest


# --- a bf16 study: sparse updates rounded to bf16, two of them sharing a mask ----------------------------------


def run_study(study_file: Path, out: Path, *extra: str) -> int:
    from harness.launch import analyze

    with pytest.raises(SystemExit) as exc:
        analyze.main([f"pairs={study_file}", f"out={out}", *extra])
    return exc.value.code


def test_bf16_sparse_pairs_sharing_a_mask(tmp_path, tiny_base) -> None:
    """Three RLVR pairs stored in bf16 whose updates change the same 5 % of entries (new values each pair),
    and a fourth (another group) with its own random 5 %: their masks' Jaccard is 1 for the three and at
    chance with the fourth; every criterion counts 95 % unchanged; S1 holds on the three; P5.III cannot be
    told from bf16 storage and says what it needs."""
    base, _ = build_base(tiny_base, tmp_path / "base", dtype=torch.bfloat16)
    g = torch.Generator().manual_seed(7)
    names = projections(base)
    shared = {n: torch.rand(base[n].shape, generator=g) < 0.05 for n in names}
    pairs = []
    for i in range(4):
        masks = shared if i < 3 else {n: torch.rand(base[n].shape, generator=g) < 0.05 for n in names}
        upd = {n: masks[n] * (base[n].float() * 0.5 * (1 + torch.rand(base[n].shape, generator=g)) + 1e-3)
               for n in names}
        write_tuned(tmp_path / f"t{i}", base, upd, torch.bfloat16)
        pairs.append({"name": f"p{i}", "base": "base", "tuned": f"t{i}", "objective": "rlvr",
                      "group": "shared" if i < 3 else "own"})
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"pairs": pairs}))
    out = tmp_path / "out"
    assert run_study(tmp_path / "s.yaml", out) == 0
    for i in range(4):
        table = pd.read_csv(out / f"p{i}" / "geometry.csv")
        rec = json.loads((out / f"p{i}" / "run.json").read_text())
        assert rec["pair"]["base_dtype"] == rec["pair"]["tuned_dtype"] == "bfloat16"
        for key in ("sparsity_bf16", "sparsity_rel1e3", "sparsity_abs"):  # bf16 storage: one count
            assert (table[key] == table["sparsity_bf16"]).all(), key
        assert table["sparsity_abs"].mean() == pytest.approx(0.95, abs=0.02)
    cross = pd.read_csv(out / "cross_run.csv")
    whole = cross[cross["scope"] == "all"].set_index(["run_a", "run_b"])
    assert whole.loc[("p0", "p1"), "jaccard"] == pytest.approx(1.0, abs=1e-3)  # same entries changed
    assert whole.loc[("p1", "p2"), "jaccard"] == pytest.approx(1.0, abs=1e-3)
    independent = whole.loc[("p0", "p3")]
    assert independent["jaccard"] == pytest.approx(independent["jaccard_base"], abs=0.02)  # chance
    got = claims(out, "shared")
    assert got["S1"] == SUPPORTED  # sparse, overlapping masks, and a 5 % random sparse update is full rank
    assert got["P4"] == SUPPORTED and got["P5.III"] == INCONCLUSIVE
    df = pd.read_csv(out / "report" / "claims.csv")
    df = df[df["group"] == "shared"].set_index("id")
    assert "stored in float32" in df.loc["P5.III", "reason"]
    assert got["P1"] == INCONCLUSIVE and "SFT pairs" in df.loc["P1", "reason"]  # no SFT pair to compare with
    assert claims(out, "own")["S1"] == INCONCLUSIVE  # one pair: no interval


# --- robustness: a failed pair, resuming, bad input, offline -------------------------------------------------


def test_failed_pair_does_not_stop_the_rest_and_a_rerun_resumes(tmp_path, tiny_base) -> None:
    base, planted = build_base(tiny_base, tmp_path / "base")
    write_tuned(tmp_path / "good", base, {n: 1e-3 * p.w0 for n, p in planted.items()})
    name = projections(base)[0]
    write_checkpoint(tmp_path / "bad", {**base, name: torch.zeros(3, 3)})  # a matrix of another shape
    pairs = [{"name": "good", "base": "base", "tuned": "good", "objective": "sft"},
             {"name": "bad", "base": "base", "tuned": "bad", "objective": "rlvr"}]
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"pairs": pairs}))
    out = tmp_path / "out"
    assert run_study(tmp_path / "s.yaml", out) == 1
    good, bad = (json.loads((out / n / "run.json").read_text()) for n in ("good", "bad"))
    assert good["status"] == "done" and bad["status"] == "failed" and "shape" in bad["reason"]
    report = (out / "report.md").read_text()
    assert "## Runs not included" in report and "shape" in report
    assert run_study(tmp_path / "s.yaml", out) == 1  # again: the analysed pair is reused, not recomputed
    assert json.loads((out / "good" / "run.json").read_text())["timings"]["reused"] is True


@pytest.mark.parametrize("entry, value", [
    ({"base": "base", "tuned": "base", "objective": "dpo"}, "dpo"),
    ({"base": "base", "tuned": "base", "objective": "rlvr", "colour": "red"}, "colour"),
    ({"base": "base", "objective": "rlvr"}, "tuned"),
    ({"base": "base", "tuned": "base", "objective": "rlvr", "dtype": "int8"}, "int8"),
    ({"base": "no/such-dir-or-model-here/x", "tuned": "base", "objective": "rlvr"}, "no/such-dir-or-model-here/x"),
    ({"base": "base", "tuned": "base", "objective": "rlvr", "base_revision": "v1"}, "v1"),
])
def test_bad_study_file_exits_2_with_one_line(tmp_path, tiny_base, capsys, entry, value) -> None:
    build_base(tiny_base, tmp_path / "base")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"pairs": [entry]}))
    assert run_study(tmp_path / "s.yaml", tmp_path / "out") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error:") and value in err[-1] and ("valid" in err[-1] or "unknown" in err[-1])
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_offline_hub_pairs_are_refused_with_what_to_set(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty hub cache
    assert run_study(Path("catalog"), tmp_path / "out") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "HF_HUB_OFFLINE=0" in err[0] and "Qwen/Qwen2.5-Math-1.5B" in err[0]


def test_catalog_lists_public_pairs_marked_unverified() -> None:
    from harness.analysis.pairs import OBJECTIVES
    from harness.analysis.pairs.spec import load_study

    study = load_study("catalog")
    assert len(study.pairs) >= 6 and {p.objective for p in study.pairs} <= set(OBJECTIVES)
    assert {"rlvr", "sft"} <= {p.objective for p in study.pairs}
    assert all("unverified here (offline)" in p.note and "/" in p.base and "/" in p.tuned for p in study.pairs)


@pytest.mark.integration
def test_bench_pairs_times_the_harness_against_modeldelta(tmp_path, monkeypatch, capsys) -> None:
    """`python -m harness.bench pairs` on a Qwen2-architecture pair at test size: both tools run on the same
    sharded bf16 pair, the ratios and peak memories are printed, and the one figure both compute agrees."""
    pytest.importorskip("modeldelta")
    import re

    from harness.launch import bench

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    bench.main(["pairs", "shape=qwen2-tiny", "threads=1"])
    out = capsys.readouterr().out
    assert "FAILED" not in out
    for label in ("harness, first pair of a base", "harness, further pair of that base", "modeldelta CLI, every",
                  "modeldelta CLI, with", "modeldelta on the harness's matrices"):
        assert re.search(re.escape(label) + r".*\s\d+\.\d\s+\d+", out), label
    assert len(re.findall(r"CLI \d+\.\d\d / \d+\.\d\d", out)) == 2  # time / memory ratios of both harness rows
    worst = float(re.search(r"largest relative difference (\S+) over 14 matrices", out).group(1))
    assert worst < 1e-4  # ΔW's effective rank: same definition, same numbers
    shards = list((tmp_path / "cache" / "bench-pairs").glob("*/tuned/model-*.safetensors"))
    assert shards and (shards[0].parent / "model.safetensors.index.json").exists()


def test_concurrent_batches_give_the_same_table(tmp_path, monkeypatch) -> None:
    """workers=2 runs two batches at once on split threads; the numbers are those of one batch at a time."""
    from harness.analysis.geometry.analyze_run import analyze_delta
    from harness.analysis.geometry.metrics import Settings
    from harness.analysis.geometry.sources import Checkpoint, PairDelta
    from harness.analysis.geometry.spectra import SpectraCache

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    g = torch.Generator().manual_seed(8)
    shapes = {"gate": (40, 24), "up": (48, 24), "down": (24, 40)}  # one batch per shape: three batches
    w = {f"model.layers.{i}.mlp.{m}_proj.weight": torch.randn(*s, generator=g) for i in range(2)
         for m, s in shapes.items()}
    base = Checkpoint(write_checkpoint(tmp_path / "b", w))
    tuned = Checkpoint(write_checkpoint(tmp_path / "t", {k: v + 1e-2 * torch.randn(v.shape, generator=g)
                                                         for k, v in w.items()}))
    tables = []
    for workers in (1, 2):
        SpectraCache.clear_memory()
        tables.append(analyze_delta(base, PairDelta(base, tuned), Settings(workers=workers)).set_index("name"))
    numeric = tables[0].select_dtypes("number").columns
    pd.testing.assert_frame_equal(tables[0][numeric], tables[1][numeric], rtol=1e-9, atol=1e-12)


def test_block_by_block_passes_give_the_whole_matrix_numbers() -> None:
    """The passes over entries and the float64 Grams run block by block (memory flat in the matrix size);
    with blocks of a few rows they give the numbers of one pass over the whole batch, mask counts exactly."""
    from harness.analysis.geometry.metrics import Settings, update_metrics
    from harness.core.linalg import gram_decomp

    g = torch.Generator().manual_seed(9)
    w0 = torch.randn(3, 70, 50, generator=g)
    d = 1e-3 * torch.randn(3, 70, 50, generator=g) * (torch.rand(3, 70, 50, generator=g) < 0.3)
    settings = Settings(ks=(16, "gap8"))
    ks = list(zip(settings.labels(), settings.k_values(70, 50)))
    whole = {}
    for block in (1 << 30, 3 * 50 * 4):  # one block; blocks of four rows
        base = gram_decomp(w0, 16, block=block)
        tuned = gram_decomp(w0, 16, add=d, block=block)
        sd = gram_decomp(d, block=block).S
        whole[block] = update_metrics(w0, d, None, base, tuned, sd, ks, 0.2, null_samples=4, block=block)
    full, blocked = whole.values()
    for key, v in full.items():
        assert torch.allclose(v, blocked[key], rtol=1e-9, atol=1e-12, equal_nan=True), key
    for key in ("sparsity_bf16", "sparsity_rel1e3", "sparsity_abs", "mask_base", "mask_overlap_k16"):
        assert torch.equal(full[key], blocked[key]), key
