"""Per-matrix metrics on hand-built matrices with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from harness.analysis.geometry.metrics import (
    Settings,
    batch_metrics,
    largest_angle_deg,
    rank_metrics,
    spectral_drift,
)
from harness.analysis.geometry.spectra import gram_decomp
from harness.core.linalg import principal_mask, rank_k_scores


def orthonormal(n: int, k: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(n, k, generator=g, dtype=torch.float64)).Q


def build(u: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return (u * s) @ v.T


K4 = Settings(ks=(4,))


def run(w0: torch.Tensor, w1: torch.Tensor, settings: Settings = K4) -> dict[str, float]:
    """Metrics of one matrix through the analyzer's fast path (base decomposition as the cache holds it)."""
    return run_delta(w0, w1.double() - w0.float().double(), settings)


def run_delta(w0: torch.Tensor, d: torch.Tensor, settings: Settings = K4) -> dict[str, float]:
    """Same, given ΔW as a run stores it (float32)."""
    w0, d = w0.float()[None], d.float()[None]
    base = gram_decomp(w0.double(), max(settings.k_values(*w0.shape[-2:])))
    out = batch_metrics(w0, d, base, None, settings)
    return {k: float(v[0]) for k, v in out.items()}


M, N = 40, 30
S = 10 * 0.8 ** torch.arange(N, dtype=torch.float64)  # distinct, well separated singular values


@pytest.mark.parametrize("theta", [0.01, 5.0, 40.0])
def test_known_rotation_angle(theta: float) -> None:
    """Rotating u_1 towards u_{k+1} by θ rotates the top-k left subspace by exactly θ, the right one not."""
    u, v = orthonormal(M, N, 0), orthonormal(N, N, 1)
    k = 4
    t = math.radians(theta)
    u1 = u.clone()
    u1[:, 0], u1[:, k] = math.cos(t) * u[:, 0] + math.sin(t) * u[:, k], -math.sin(t) * u[:, 0] + math.cos(t) * u[:, k]
    out = run(build(u, S, v), build(u1, S, v))
    assert out["angle_u_k4"] == pytest.approx(theta, abs=1e-3)
    assert out["angle_v_k4"] < 1e-3
    assert out["angle_k4"] == pytest.approx(theta, abs=1e-3)
    assert out["drift"] < 1e-6  # same singular values


def test_angle_matches_scipy() -> None:
    a, b = orthonormal(50, 6, 2), orthonormal(50, 6, 3)
    ref = np.degrees(scipy.linalg.subspace_angles(a.numpy(), b.numpy()).max())
    assert float(largest_angle_deg(a[None], b[None])[0]) == pytest.approx(ref, abs=1e-9)
    tiny = torch.linalg.qr(a + 1e-9 * b).Q  # tiny angles: no arccos cancellation
    ref = np.degrees(scipy.linalg.subspace_angles(a.numpy(), tiny.numpy()).max())
    assert float(largest_angle_deg(a[None], tiny[None])[0]) == pytest.approx(ref, rel=1e-3)


@pytest.mark.parametrize("eps", [1e-3, 0.05])
def test_scaling_gives_drift_eps(eps: float) -> None:
    u, v = orthonormal(M, N, 4), orthonormal(N, N, 5)
    w0 = build(u, S, v)
    assert float(spectral_drift(S[None], (1 + eps) * S[None])[0]) == pytest.approx(eps, rel=1e-12)
    out = run(w0, (1 + eps) * w0)
    assert out["drift"] == pytest.approx(eps, rel=1e-4)  # float32 storage of W0, W1
    assert out["angle_k4"] < 1e-3  # scaling rotates nothing


@pytest.mark.parametrize("r", [1, 3, 7])
def test_rank_r_update(r: int) -> None:
    """ΔW = Σ t_i a_i b_iᵀ: effective rank ≤ r (= exp H(t/Σt)), stable rank Σt²/t_1², numerical rank r.
    (ΔW is given as stored: W1 − W0 computed in float32 would add rounding noise eps·|W0|, which the default
    numerical-rank tolerance, relative to ‖ΔW‖₂, counts as rank.)"""
    t = torch.linspace(2.0, 0.5, r, dtype=torch.float64)
    delta = build(orthonormal(M, r, 6), t, orthonormal(N, r, 7))
    w0 = build(orthonormal(M, N, 8), S, orthonormal(N, N, 9))
    out = run_delta(w0, 1e-2 * delta)
    p = t / t.sum()
    assert out["eff_rank"] <= r + 1e-3
    assert out["eff_rank"] == pytest.approx(float(torch.exp(-(p * p.log()).sum())), rel=1e-3)
    assert out["stable_rank"] == pytest.approx(float((t**2).sum() / t[0] ** 2), rel=1e-3)
    assert out["num_rank_frac"] == pytest.approx(r / min(M, N))
    # the formulas themselves, on exact singular values
    exact = rank_metrics(torch.cat([t, torch.zeros(N - r, dtype=torch.float64)])[None], M, N)
    assert float(exact["stable_rank"][0]) == pytest.approx(float((t**2).sum() / t[0] ** 2), rel=1e-12)
    assert float(exact["eff_rank"][0]) == pytest.approx(float(torch.exp(-(p * p.log()).sum())), rel=1e-12)


def test_equal_singular_values_give_effective_rank_r() -> None:
    out = rank_metrics(torch.tensor([[3.0, 3.0, 3.0, 0.0, 0.0]], dtype=torch.float64), 5, 5)
    assert float(out["eff_rank"][0]) == pytest.approx(3.0, rel=1e-12)
    assert float(out["stable_rank"][0]) == pytest.approx(3.0, rel=1e-12)
    zero = rank_metrics(torch.zeros(1, 4, dtype=torch.float64), 4, 6)
    assert all(math.isnan(float(v[0])) for v in zero.values())  # a zero update has no rank


def test_bf16_sparsity_counts_changed_bf16_entries() -> None:
    g = torch.Generator().manual_seed(0)
    w0 = (torch.randn(M, N, generator=g) * 0.05).bfloat16().float()  # bf16 weights (stored as fp32)
    w0[0, :3] = 0.0
    changed = torch.rand(M, N, generator=g) < 0.3
    # another bf16 value for every entry: a 5 % change is far above the bf16 spacing (at most 2^-7 relative)
    bumped = torch.where(w0 == 0, 1e-3, w0 * 1.05).bfloat16().float()
    w1 = torch.where(changed, bumped, w0)
    w1 = w1 + (w0 * 1e-5) * (~changed)  # sub-bf16 noise on the others: invisible in bf16
    n_changed = int((w1.bfloat16() != w0.bfloat16()).sum())
    assert n_changed == int(changed.sum()) > 0
    out = run(w0, w1)
    assert out["sparsity_bf16"] == pytest.approx(1 - n_changed / (M * N), abs=1e-12)
    # absolute criterion: the 1e-5-relative noise (|Δ| < 1e-5) counts as unchanged, the bumps as changed
    assert out["sparsity_abs"] == pytest.approx(1 - float(((w1 - w0).abs() > 1e-5).sum()) / (M * N), abs=1e-12)


def test_energy_inside_and_outside_top_k() -> None:
    u, v = orthonormal(M, N, 10), orthonormal(N, N, 11)
    w0 = build(u, S, v)
    k = 4
    c = torch.randn(k, k, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    inside = u[:, :k] @ c @ v[:, :k].T
    outside = u[:, k:2 * k] @ c @ v[:, k:2 * k].T
    half = u[:, :k] @ c @ v[:, k:2 * k].T  # left inside, right outside: still no energy in U_kᵀ ΔW V_k
    assert run(w0, w0 + 1e-2 * inside)["energy_k4"] == pytest.approx(1.0, abs=1e-5)
    assert run(w0, w0 + 1e-2 * outside)["energy_k4"] == pytest.approx(0.0, abs=1e-5)
    assert run(w0, w0 + 1e-2 * half)["energy_k4"] == pytest.approx(0.0, abs=1e-5)
    assert run(w0, w0 + 1e-2 * inside)["energy_base_k4"] == pytest.approx(k * k / (M * N))


def test_random_update_energy_near_baseline() -> None:
    """The baseline k²/(mn) is the expected energy of an isotropic random ΔW."""
    w0 = build(orthonormal(M, N, 12), S, orthonormal(N, N, 13)).float()
    g = torch.Generator().manual_seed(2)
    d = 1e-3 * torch.randn(200, M, N, generator=g)
    w0s = w0.expand(200, M, N).contiguous()
    base = gram_decomp(w0s.double(), 4)
    out = batch_metrics(w0s, d, base, None, Settings(ks=(4,)))
    assert float(out["energy_k4"].mean()) == pytest.approx(16 / (M * N), rel=0.15)


def test_mask_overlap_principal_and_complement() -> None:
    w0 = build(orthonormal(M, N, 14), S, orthonormal(N, N, 15)).float()
    settings = Settings(ks=(4,), alpha=0.2)
    base = gram_decomp(w0.double()[None], 4)
    princ = principal_mask(rank_k_scores(base, 4), 0.2)[0]
    assert int(princ.sum()) == round(0.2 * M * N)
    bump = 0.01 * w0.abs() + 1e-3  # far above the bf16 tolerance
    inside = run(w0, w0 + bump * princ, settings)
    outside = run(w0, w0 + bump * ~princ, settings)
    assert inside["mask_overlap_k4"] == pytest.approx(1.0)
    assert outside["mask_overlap_k4"] == pytest.approx(0.0)
    assert inside["mask_base"] == pytest.approx(0.2, abs=1 / (M * N))
    assert math.isnan(run(w0, w0, settings)["mask_overlap_k4"])  # nothing changed: undefined


def test_k_settings() -> None:
    s = Settings(ks=(16, 0.01))
    assert s.k_values(576, 1536) == [16, 6] and s.k_values(32, 64) == [16, 1] and s.k_values(8, 8) == [8, 1]
    assert s.labels() == ["k16", "k1pct"]
