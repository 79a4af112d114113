"""Decompositions: Gram-based σ and vectors vs full SVD, the randomized top-k bound, the on-disk cache."""

from __future__ import annotations

import math

import pytest
import torch

from harness.analysis.geometry.metrics import Settings, batch_metrics, largest_angle_deg
from harness.analysis.geometry.sources import Checkpoint
from harness.analysis.geometry.spectra import SpectraCache, gram_decomp, randomized_topk
from harness.analysis.geometry.synthetic import write_checkpoint


def matrices(b: int, m: int, n: int, decay: float, seed: int) -> torch.Tensor:
    """A batch of W = U diag(σ) Vᵀ with σ_i = decay^i (decay 1: a random Gaussian matrix's flat spectrum)."""
    g = torch.Generator().manual_seed(seed)
    if decay == 1.0:
        return torch.randn(b, m, n, generator=g, dtype=torch.float64) / math.sqrt(n)
    r = min(m, n)
    u = torch.linalg.qr(torch.randn(b, m, r, generator=g, dtype=torch.float64)).Q
    v = torch.linalg.qr(torch.randn(b, n, r, generator=g, dtype=torch.float64)).Q
    return (u * decay ** torch.arange(r, dtype=torch.float64)) @ v.mT


@pytest.mark.parametrize("shape", [(48, 32), (32, 48)])
def test_gram_matches_full_svd(shape: tuple[int, int]) -> None:
    w = matrices(3, *shape, decay=0.85, seed=0)
    d = gram_decomp(w, 5)
    u, s, vh = torch.linalg.svd(w, full_matrices=False)
    assert torch.allclose(d.S, s, atol=1e-10 * float(s.max()))
    assert float(largest_angle_deg(d.U, u[..., :5]).max()) < 1e-6
    assert float(largest_angle_deg(d.V, vh[..., :5, :].mT).max()) < 1e-6


def test_randomized_angles_within_bound() -> None:
    """Warm-started randomized top-k: its angles agree with the exact ones within the returned bound, and
    the bound really bounds the distance to the exact subspaces."""
    ks = [4, 8]
    w0 = matrices(4, 64, 48, decay=0.8, seed=1)
    w1 = w0 + 1e-3 * matrices(4, 64, 48, decay=1.0, seed=2)
    base, exact = gram_decomp(w0, 8), gram_decomp(w1, 8)
    u, v, bound = randomized_topk(w1, exact.S, base.V, ks, tol_deg=1e-4)
    assert float(bound.max()) <= 1e-4
    for k in ks:
        err = torch.maximum(largest_angle_deg(u[..., :k], exact.U[..., :k]),
                            largest_angle_deg(v[..., :k], exact.V[..., :k]))
        assert bool((err <= bound + 1e-9).all())
        diff = (largest_angle_deg(base.U[..., :k], u[..., :k]) - largest_angle_deg(base.U[..., :k], exact.U[..., :k]))
        assert bool((diff.abs() <= bound + 1e-9).all())
    # and through the analyzer: randomized where it converged (bound > 0), same angles as exact within it
    w0f, df = w0.float(), (w1 - w0).float()
    fast = batch_metrics(w0f, df, base, None, Settings(ks=(4, 8)))
    rand = batch_metrics(w0f, df, base, None, Settings(ks=(4, 8), topk="randomized"))
    assert 0 < float(rand["angle_bound_deg"].max()) <= 1e-4
    for k in ("k4", "k8"):
        assert bool(((rand[f"angle_{k}"] - fast[f"angle_{k}"]).abs() <= rand["angle_bound_deg"] + 1e-6).all())


def test_randomized_falls_back_on_flat_spectrum() -> None:
    """No spectral gap to converge on: the bound stays large, so the exact decomposition is used."""
    w0 = matrices(2, 40, 40, decay=1.0, seed=3).float()
    d = 1e-2 * matrices(2, 40, 40, decay=1.0, seed=4).float()
    base = gram_decomp(w0.double(), 4)
    fast = batch_metrics(w0, d, base, None, Settings(ks=(4,)))
    rand = batch_metrics(w0, d, base, None, Settings(ks=(4,), topk="randomized", iters=1))
    assert float(rand["angle_bound_deg"].max()) == 0.0  # fell back
    assert torch.allclose(rand["angle_k4"], fast["angle_k4"], atol=1e-9)


def test_cache_built_once_and_keyed_by_weights(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    g = torch.Generator().manual_seed(0)
    tensors = {f"model.layers.{i}.self_attn.q_proj.weight": torch.randn(24, 16, generator=g) for i in range(3)}
    ckpt = Checkpoint(write_checkpoint(tmp_path / "base", tensors))
    names, ks_of = list(tensors), (lambda n: Settings().k_values(24, 16))
    SpectraCache.clear_memory()
    cache = SpectraCache.of(ckpt)
    cache.ensure(names, ks_of, 0.2)
    assert cache.built_s > 0 and cache.file.exists()
    s = torch.linalg.svdvals(tensors[names[1]].double())
    assert torch.allclose(cache.decomp([names[1]], 1).S[0], s, atol=1e-10)

    SpectraCache.clear_memory()  # a new process: everything comes from disk, nothing is recomputed
    again = SpectraCache.of(Checkpoint(tmp_path / "base"))
    again.ensure(names, ks_of, 0.2)
    assert again.built_s == 0 and again.dir == cache.dir

    tensors[names[0]] = tensors[names[0]] * 2  # other weights: another key
    other = Checkpoint(write_checkpoint(tmp_path / "base2", tensors))
    assert other.weights_hash() != ckpt.weights_hash()
    same = Checkpoint(write_checkpoint(tmp_path / "base3", {**tensors, names[0]: tensors[names[0]] / 2}))
    assert same.weights_hash() == ckpt.weights_hash()  # same bytes in another dir: same key
