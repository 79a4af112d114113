"""Reliability and nulls of the geometry figures: gap, Wedin bound, gap-aware k, mean angle, the same-size
random null (checked against sampled random updates), size-normalised figures, aggregates that leave out
vacuous angles and skip the rank of a zero update."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.linalg
import torch

from harness.analysis.geometry.aggregate import aggregate_rows
from harness.analysis.geometry.metrics import Settings, batch_metrics, columns, gap_k
from harness.analysis.geometry.spectra import gram_decomp
from harness.core.linalg import principal_angles

M, N = 60, 40


def orthonormal(n: int, k: int, gen: torch.Generator) -> torch.Tensor:
    return torch.linalg.qr(torch.randn(n, k, generator=gen, dtype=torch.float64)).Q


def near_tie_w0(seed: int = 0) -> torch.Tensor:
    """σ_{i+1} = σ_i/1.003 except a real gap σ_12/σ_13 = 2 and a near-tie σ_16/σ_17 = 1.00001."""
    ratios = torch.full((N - 1,), 1.003, dtype=torch.float64)
    ratios[11], ratios[15] = 2.0, 1.00001
    s = 10 / torch.cat([torch.ones(1, dtype=torch.float64), ratios.cumprod(0)])
    g = torch.Generator().manual_seed(seed)
    return ((orthonormal(M, N, g) * s) @ orthonormal(N, N, g).T).float()


def metrics(w0: torch.Tensor, d: torch.Tensor, settings: Settings) -> dict[str, torch.Tensor]:
    """Metrics of a batch of updates of one W0 through the analyzer's fast path."""
    b = d.shape[0]
    w0s = w0.expand(b, *w0.shape).contiguous()
    base = gram_decomp(w0s.double(), max(settings.k_values(*w0.shape)))
    return batch_metrics(w0s, d, base, None, settings)


def test_gap_k_angle_stays_put_where_k16_swings() -> None:
    """On a near-tie at k = 16, six small random updates swing the k = 16 angle over tens of degrees (a swap
    of σ_16/σ_17's directions, flagged by a vacuous Wedin bound); the gap-aware k picks k = 12 (the gap
    nearest 16) and its angle stays within a few thousandths of a degree, inside its bound."""
    g = torch.Generator().manual_seed(1)
    d = 1e-3 * torch.randn(6, M, N, generator=g)
    out = metrics(near_tie_w0(), d, Settings(ks=(16, "gap16")))
    a16, agap = out["angle_k16"], out["angle_kgap16"]
    assert float(a16.max() - a16.min()) > 30  # swings
    assert bool((out["wedin_k16"] >= 1).all())  # ... and the bound says so
    assert bool((out["k_kgap16"] == 12).all()) and bool((out["gap_kgap16"] - 2).abs().max() < 1e-6)
    assert float(agap.max() - agap.min()) < 0.02 and float(agap.max()) < 0.1  # stays put
    assert bool((out["wedin_kgap16"] < 0.01).all())
    assert bool((torch.sin(torch.deg2rad(agap)) <= out["wedin_kgap16"]).all())  # Wedin holds


def test_gap_k_selection() -> None:
    s = torch.tensor([[16.0, 8, 7.99, 7.98, 7.97, 7.5, 3, 2.99, 2.98, 2.97]], dtype=torch.float64)
    # σ_k/σ_{k+1}: k=1 2.0, k=2..4 1.0013, k=5 1.063, k=6 2.5, k=7..9 1.003
    assert gap_k(s, 4).tolist() == [5]  # the qualifying k nearest 4
    assert gap_k(s, 1).tolist() == [1]
    assert gap_k(s, 4, ratio=1.5).tolist() == [6]  # 2 from 4, k = 1 is 3 away
    assert gap_k(s, 2, ratio=1.5).tolist() == [1]  # window [1, 4]
    assert gap_k(s, 3, ratio=1.05).tolist() == [1]  # k = 1 and k = 5 both 2 away: the larger gap
    flat = torch.tensor([[5.0, 4.99, 4.97, 4.96, 4.95]], dtype=torch.float64)
    assert gap_k(flat, 2, ratio=1.5).tolist() == [2]  # none qualifies: the largest gap in the window


def test_settings_gap_labels_and_window() -> None:
    s = Settings(ks=(16, "gap16", "gap4"))
    assert s.labels() == ["k16", "kgap16", "kgap4"]
    assert s.k_values(576, 1536) == [16, 32, 8] and s.k_values(20, 30) == [16, 19, 8]
    assert "gap_ratio" in s.fingerprint() and "gap_ratio" not in Settings().fingerprint()
    assert {"wedin_kgap16", "angle_null_kgap16", "drift_null"} <= set(columns(s))
    assert "drift_null" not in columns(Settings(null=False))


def test_principal_angles_all_match_scipy() -> None:
    g = torch.Generator().manual_seed(2)
    a, b = orthonormal(50, 6, g), orthonormal(50, 6, g)
    ref = np.sort(np.degrees(scipy.linalg.subspace_angles(a.numpy(), b.numpy())))
    np.testing.assert_allclose(principal_angles(a, b).numpy(), ref, atol=1e-9)
    # one direction tilted by θ, the others not: largest θ, mean θ/k (also for tiny θ)
    for theta in (1e-8, 0.3, 1.2):
        tilted = a.clone()
        tilted[:, 0] = math.cos(theta) * a[:, 0] + math.sin(theta) * b[:, 0] / b[:, 0].norm()
        q = torch.linalg.qr(tilted).Q
        expect = math.degrees(float(torch.acos(torch.linalg.svdvals(a.T @ q)[-1]))) if theta > 1e-4 else None
        ang = principal_angles(a, q)
        if expect is not None:
            assert float(ang[-1]) == pytest.approx(expect, rel=1e-9)
        assert float(ang[:-1].abs().max()) < 1e-6 * max(1.0, math.degrees(theta))


def test_mean_angle_of_a_single_tilt() -> None:
    """Tilting u_1 towards u_{k+1} by θ: largest angle θ, mean angle θ/k."""
    g = torch.Generator().manual_seed(3)
    u, v = orthonormal(M, N, g), orthonormal(N, N, g)
    s = 10 * 0.8 ** torch.arange(N, dtype=torch.float64)
    k, t = 4, math.radians(6.0)
    u1 = u.clone()
    u1[:, 0], u1[:, k] = math.cos(t) * u[:, 0] + math.sin(t) * u[:, k], -math.sin(t) * u[:, 0] + math.cos(t) * u[:, k]
    w0, w1 = ((u * s) @ v.T).float(), ((u1 * s) @ v.T).float()
    out = metrics(w0, (w1.double() - w0.double()).float()[None], Settings(ks=(4,)))
    assert float(out["angle_k4"][0]) == pytest.approx(6.0, abs=1e-3)
    assert float(out["angle_mean_k4"][0]) == pytest.approx(6.0 / k, abs=1e-3)


def random_w0() -> torch.Tensor:
    """A Gaussian bulk (Marchenko–Pastur) plus 4 spikes: gapped top-4, a bulk around k = 10."""
    g = torch.Generator().manual_seed(4)
    m, n = 96, 64
    w = torch.randn(m, n, generator=g, dtype=torch.float64) / math.sqrt(n)
    spikes = (orthonormal(m, 4, g) * torch.tensor([8.0, 6, 5, 4], dtype=torch.float64)) @ orthonormal(n, 4, g).T
    return (w + spikes).float()


@pytest.mark.parametrize("rel", [1e-3, 1e-2])
def test_null_matches_sampled_random_updates(rel: float) -> None:
    """The null columns (first-order / closed forms) against the real metrics of 48 sampled ΔW_rand =
    ‖ΔW‖_F·G/‖G‖_F: within 6 % (sampling error of the means is ≤ 2 %), at a gapped k and in the bulk."""
    w0 = random_w0()
    g = torch.Generator().manual_seed(5)
    s = 48
    gauss = torch.randn(s, *w0.shape, generator=g)
    d = gauss * (rel * float(w0.norm()) / gauss.flatten(1).norm(dim=1))[:, None, None]
    out = metrics(w0, d, Settings(ks=(4, 10)))
    pairs = {"drift": "drift_null"}
    for k in ("k4", "k10"):
        pairs |= {f"angle_{k}": f"angle_null_{k}", f"angle_mean_{k}": f"angle_mean_null_{k}",
                  f"energy_{k}": f"energy_null_{k}", f"mask_overlap_{k}": f"mask_overlap_null_{k}"}
    for fig, null in pairs.items():
        assert float(out[null].mean()) == pytest.approx(float(out[fig].mean()), rel=0.06), fig
    if rel == 1e-3:  # the overlap null is not α = 0.2: a small random update changes small-|w0| entries first
        assert float(out["mask_overlap_null_k4"].mean()) < 0.12


def test_size_normalised_figures() -> None:
    w0 = random_w0()
    g = torch.Generator().manual_seed(6)
    d = torch.randn(2, *w0.shape, generator=g) * torch.tensor([1e-4, 1e-3])[:, None, None]
    out = metrics(w0, d, Settings(ks=(4,)))
    torch.testing.assert_close(out["drift_per_rel"], out["drift"] / out["rel_update"])
    torch.testing.assert_close(out["angle_per_rel_k4"], out["angle_k4"] / out["rel_update"])
    # a random update's drift is ~linear in its size: per unit of size, the two agree
    assert float(out["drift_per_rel"][0]) == pytest.approx(float(out["drift_per_rel"][1]), rel=0.1)


def table(out: dict[str, torch.Tensor], m: int, n: int) -> pd.DataFrame:
    b = len(out["drift"])
    return pd.DataFrame({"name": [f"m{i}" for i in range(b)], "layer": range(b), "module": "q", "m": m, "n": n,
                         "params": m * n, **{k: v.numpy() for k, v in out.items()}})


def test_zero_update_has_no_rank_and_is_skipped() -> None:
    """Regression: a zero ΔW (an adapter that targets only some modules) got effective and stable rank 0,
    which pulled down the whole-model mean. Now NaN, and the aggregate is the updated matrix's rank alone."""
    w0 = random_w0()
    g = torch.Generator().manual_seed(7)
    low = (torch.randn(96, 3, generator=g) @ torch.randn(3, 64, generator=g)) * 1e-3
    d = torch.stack([low, torch.zeros_like(low)])
    out = metrics(w0, d, Settings(ks=(4,)))
    for key in ("eff_rank", "stable_rank", "num_rank_frac"):
        assert math.isnan(float(out[key][1])) and not math.isnan(float(out[key][0]))
    whole = aggregate_rows(table(out, 96, 64))
    assert whole["eff_rank"] == pytest.approx(float(out["eff_rank"][0]))
    assert whole["stable_rank"] == pytest.approx(float(out["stable_rank"][0]))
    assert 2.0 < whole["eff_rank"] <= 3.0 + 1e-6


def test_aggregate_leaves_out_vacuous_angles() -> None:
    """Matrices whose Wedin bound is vacuous do not enter the angle means (nor their nulls); they are
    counted; the drift of every matrix still counts."""
    w0 = near_tie_w0()
    g = torch.Generator().manual_seed(8)
    d = torch.randn(3, M, N, generator=g) * torch.tensor([1e-3, 1e-3, 1e-7])[:, None, None]
    out = metrics(w0, d, Settings(ks=(16,)))
    wedin = out["wedin_k16"]
    ok = wedin < 1
    assert int(ok.sum()) == 1 and bool(ok[2])  # only the tiny update leaves σ_16/σ_17 in order
    whole = aggregate_rows(table(out, M, N))
    assert whole["vacuous_k16"] == 2
    assert whole["angle_k16"] == pytest.approx(float(out["angle_k16"][2]))
    assert whole["max_angle_k16"] == pytest.approx(float(out["angle_k16"][2]))
    assert whole["angle_null_k16"] == pytest.approx(float(out["angle_null_k16"][2]))
    assert whole["drift"] == pytest.approx(float(out["drift"].mean()))
    assert whole["median_gap_k16"] == pytest.approx(1.00001, rel=1e-4)


def test_per_layer_plot_leaves_out_vacuous(tmp_path) -> None:
    from harness.analysis.geometry.plots import per_layer, plot_layers

    g = torch.Generator().manual_seed(8)
    d = torch.randn(3, M, N, generator=g) * torch.tensor([1e-3, 1e-3, 1e-7])[:, None, None]
    df = table(metrics(near_tie_w0(), d, Settings(ks=(16,))), M, N).assign(layer=0)
    pl = per_layer(df, "k16")
    assert float(pl.loc[0, "angle"]) == pytest.approx(float(df["angle_k16"][2]))  # the reliable one only
    assert float(pl.loc[0, "angle_null"]) == pytest.approx(float(df["angle_null_k16"][2]))
    assert plot_layers({"run": df}, "k16", tmp_path / "layers.png").stat().st_size > 0
