"""Trajectory numerics on hand-built snapshot series with known answers: a path linear by construction (R² = 1, the
extrapolation exact), paths with a known non-linear part (R² and extrapolation error by hand), the whole model as
the sum of its matrices' Grams, and the PULSE summary."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file, save_file

from harness.analysis.trajectory import (
    analyze_trajectory,
    extrapolation_error,
    extrapolation_weights,
    r2_linear,
    r2_rank1,
    snapshot_gram,
)

NAMES = ("model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight")


def write_series(job, series: dict[int, dict[str, torch.Tensor]], sparsity: list[dict] | None = None) -> None:
    traj = job / "trajectory"
    traj.mkdir(parents=True)
    for step, mats in series.items():
        save_file({k: v.float().contiguous() for k, v in mats.items()}, str(traj / f"step_{step}.safetensors"),
                  metadata={"step": str(step), "kind": "full"})
    if sparsity is not None:
        (traj / "sparsity.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sparsity))


def unit(shape, i, j) -> torch.Tensor:
    e = torch.zeros(shape)
    e[i, j] = 1.0
    return e


def test_linear_by_construction_is_r2_one_and_extrapolates_exactly(tmp_path):
    """ΔW_t = t·D with D of small integers (every t·D exact in fp32): both R² are 1 and the extrapolation from the
    first half (steps 3, 6) gives ΔW_12 itself, written to extrapolated.safetensors."""
    gen = torch.Generator().manual_seed(0)
    ds = {NAMES[0]: torch.randint(-3, 4, (6, 4), generator=gen).float(),
          NAMES[1]: torch.randint(-3, 4, (4, 8), generator=gen).float()}
    steps = [0, 3, 6, 9, 12]
    write_series(tmp_path, {t: {n: t * d for n, d in ds.items()} for t in steps})
    s = analyze_trajectory(tmp_path, 0.5)
    assert s["fit_steps"] == [3, 6] and s["steps"] == steps and s["kind"] == "full"
    for fig in [s["whole"], *s["per_matrix"].values()]:
        assert fig["r2_rank1"] == pytest.approx(1.0, abs=1e-12)
        assert fig["r2_linear"] == pytest.approx(1.0, abs=1e-12)
        assert fig["extrap_rel_err"] == pytest.approx(0.0, abs=1e-7)
    ex = load_file(str(tmp_path / "trajectory" / "extrapolated.safetensors"))
    for n, d in ds.items():
        torch.testing.assert_close(ex[n], 12 * d, rtol=0, atol=1e-5)
    assert (tmp_path / "trajectory_summary.json").exists() and (tmp_path / "trajectory.png").stat().st_size > 0


def test_orthogonal_steps_by_hand(tmp_path):
    """ΔW_1 = E₁, ΔW_2 = E₂ (orthogonal unit matrices). Gram diag(0, 1, 1): rank-1 R² = 1/2 (its floor: two
    directions of equal energy). Linear fit (t/2)·E₂: residual ‖E₁ − E₂/2‖² = 1.25 at t = 1, 0 at t = 2, so
    R² = 1 − 1.25/2 = 0.375. Extrapolation from step 1: β = E₁, ΔŴ_2 = 2E₁, error ‖2E₁ − E₂‖/‖E₂‖ = √5."""
    shape = (3, 3)
    write_series(tmp_path, {0: {NAMES[0]: torch.zeros(shape)}, 1: {NAMES[0]: unit(shape, 0, 0)},
                            2: {NAMES[0]: unit(shape, 0, 1)}})
    f = analyze_trajectory(tmp_path, 0.5, plot=False)["per_matrix"][NAMES[0]]
    assert f["r2_rank1"] == pytest.approx(0.5) and f["r2_rank1_min"] == pytest.approx(0.5)
    assert f["r2_linear"] == pytest.approx(0.375)
    assert f["extrap_rel_err"] == pytest.approx(math.sqrt(5))


def test_quadratic_part_by_hand():
    """ΔW_t = t·D + t²·E, D ⟂ E unit, steps 0, 1, 2: rows D+E and 2D+4E, Gram [[2, 6], [6, 20]] (and the zero row).
    λ_max = 11 + √117, so rank-1 R² = (11 + √117)/22. Linear fit: residual at t = 1 is (D+E) − (D+2E) = −E, so
    R² = 1 − 1/22. Extrapolation from step 1: ΔŴ_2 = 2D + 2E, error ‖−2E‖/‖2D+4E‖ = 2/√20."""
    d, e = unit((2, 2), 0, 0), unit((2, 2), 1, 1)
    steps = [0, 1, 2]
    series = torch.stack([t * d + t**2 * e for t in steps])
    g = snapshot_gram(series)
    torch.testing.assert_close(g[1:, 1:], torch.tensor([[2.0, 6.0], [6.0, 20.0]], dtype=torch.float64))
    assert r2_rank1(g) == pytest.approx((11 + math.sqrt(117)) / 22)
    assert r2_linear(g, steps) == pytest.approx(21 / 22)
    w = extrapolation_weights(steps, 0.5)
    assert w.tolist() == [0.0, 2.0, 0.0]
    assert extrapolation_error(g, w) == pytest.approx(2 / math.sqrt(20))


def test_whole_model_sums_the_grams(tmp_path):
    """Matrix A linear (t·D, ‖D‖ = 1), matrix B the orthogonal steps: whole Gram [[2, 2], [2, 5]] on steps 1, 2,
    λ_max = 6 of trace 7 -> rank-1 R² 6/7; linear residual only B's 1.25 -> 1 − 1.25/7; extrapolation error:
    A exact, B's error 2E₁ − E₂ has norm² 5, over ‖ΔW_2‖² = 4 + 1 -> 1."""
    a = unit((2, 2), 0, 1)
    write_series(tmp_path, {t: {NAMES[0]: t * a, NAMES[1]: [torch.zeros(2, 3), unit((2, 3), 0, 0),
                                                            unit((2, 3), 1, 2)][t]} for t in (0, 1, 2)})
    w = analyze_trajectory(tmp_path, 0.5, plot=False)["whole"]
    assert w["r2_rank1"] == pytest.approx(6 / 7)
    assert w["r2_linear"] == pytest.approx(1 - 1.25 / 7)
    assert w["extrap_rel_err"] == pytest.approx(1.0)


def test_too_few_snapshots_to_fit_is_one_clear_error(tmp_path):
    """No snapshot in the first half: the weights refuse with the reason; the analysis still gives both R² (one
    moving snapshot: 1 and 1) and reports the extrapolation as absent, with that reason, writing no model."""
    with pytest.raises(ValueError, match="fit_fraction"):
        extrapolation_weights([0, 10], 0.5)
    write_series(tmp_path, {0: {NAMES[0]: torch.zeros(2, 2)}, 10: {NAMES[0]: unit((2, 2), 0, 0)}})
    s = analyze_trajectory(tmp_path, 0.5, plot=False)
    assert s["whole"]["r2_rank1"] == 1.0 and s["whole"]["r2_linear"] == 1.0
    assert math.isnan(s["whole"]["extrap_rel_err"]) and "fit_fraction" in s["no_fit"] and s["fit_steps"] == []
    assert not (tmp_path / "trajectory" / "extrapolated.safetensors").exists()


def test_pulse_summary(tmp_path):
    """sparsity.jsonl rows summarized per dtype: the whole-model share per step, its mean, and per matrix."""
    rows = [{"step": s, "bfloat16": {"changed": c, "per_matrix": {NAMES[0]: c, NAMES[1]: c / 2}},
             "float32": {"changed": 1.0, "per_matrix": {NAMES[0]: 1.0, NAMES[1]: 1.0}}}
            for s, c in ((1, 0.5), (2, 0.25))]
    write_series(tmp_path, {t: {NAMES[0]: t * unit((2, 2), 0, 0)} for t in (0, 1, 2)}, rows)
    p = analyze_trajectory(tmp_path, 0.5, plot=False)["pulse"]
    assert p["bfloat16"]["changed"] == [0.5, 0.25] and p["bfloat16"]["mean_changed"] == pytest.approx(0.375)
    assert p["bfloat16"]["mean_sparsity"] == pytest.approx(0.625)
    assert p["bfloat16"]["per_matrix_mean_changed"][NAMES[1]] == pytest.approx(0.1875)
    assert p["float32"]["mean_changed"] == 1.0
