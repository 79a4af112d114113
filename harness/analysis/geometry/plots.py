"""PNG plots of the geometry tables (matplotlib, Agg backend; files written atomically)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness.core.store import atomic_savefig


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    atomic_savefig(fig, path, dpi=100)
    _pyplot().close(fig)
    return path


def per_layer(df: pd.DataFrame, k: str) -> pd.DataFrame:
    """Per layer: the largest rotation angle over its matrices whose Wedin bound is not vacuous (a near-tie
    swap is not a rotation), the same for the random null, and the parameter-weighted mean drift."""
    blocks = df[df["layer"] >= 0]
    ok = blocks[f"wedin_{k}"] < 1 if f"wedin_{k}" in blocks else pd.Series(True, index=blocks.index)
    g = blocks.groupby("layer")
    out = pd.DataFrame({
        "angle": blocks[f"angle_{k}"].where(ok).groupby(blocks["layer"]).max(),
        "drift": g.apply(lambda x: np.average(x["drift"], weights=x["params"]), include_groups=False),
    })
    if f"angle_null_{k}" in blocks:
        out["angle_null"] = blocks[f"angle_null_{k}"].where(ok).groupby(blocks["layer"]).max()
    if "drift_null" in blocks:
        out["drift_null"] = g.apply(lambda x: np.average(x["drift_null"], weights=x["params"]),
                                    include_groups=False)
    return out


def plot_layers(tables: dict[str, pd.DataFrame], k: str, path: Path) -> Path:
    """Per-layer largest principal angle (top-k, left or right; matrices with a vacuous Wedin bound left out)
    and spectral drift, one line per run, its same-size random null dotted in the same colour."""
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    positive = False  # a log axis needs one positive drift (a zero update has none)
    for label, df in tables.items():
        pl = per_layer(df, k)
        positive = positive or bool((pl["drift"] > 0).any())
        line = ax1.plot(pl.index, pl["angle"], marker="o", ms=3, label=label)[0]
        ax2.plot(pl.index, pl["drift"], marker="o", ms=3, label=label, color=line.get_color())
        if "angle_null" in pl:
            ax1.plot(pl.index, pl["angle_null"], ls=":", lw=1, color=line.get_color())
        if "drift_null" in pl:
            ax2.plot(pl.index, pl["drift_null"], ls=":", lw=1, color=line.get_color())
    ax1.set(xlabel="layer", ylabel=f"largest principal angle, {k} (deg)",
            title="subspace rotation (dotted: random update of the same size)")
    ax2.set(xlabel="layer", ylabel="spectral drift ‖Δσ‖/‖σ‖", title="spectral drift (dotted: random null)",
            yscale="log" if positive else "linear")
    ax2.legend(fontsize=7, loc="best")
    for ax in (ax1, ax2):
        ax.xaxis.get_major_locator().set_params(integer=True)
    return _save(fig, path)


def plot_spectrum(s0: np.ndarray, s1: dict[str, np.ndarray], name: str, path: Path) -> Path:
    """Singular spectrum of W0 vs W1 (each run) for one matrix, and the shift σ_i(W1) − σ_i(W0)."""
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    idx = np.arange(1, len(s0) + 1)
    ax1.plot(idx, s0, color="black", lw=2, label="W0")
    for label, s in s1.items():
        ax1.plot(idx, s, lw=1, label=f"W1 {label}")
        ax2.plot(idx, s - s0, lw=1, label=label)
    ax1.set(xlabel="index i", ylabel="σ_i", yscale="log", title=name)
    ax2.axhline(0, color="black", lw=0.5)
    ax2.set(xlabel="index i", ylabel="σ_i(W1) − σ_i(W0)", title="spectral shift")
    ax1.legend(fontsize=7)
    return _save(fig, path)


def plot_energy(tables: dict[str, pd.DataFrame], k: str, path: Path) -> Path:
    """Energy of ΔW inside W0's top-k subspace vs its random baseline k²/(mn), one point per matrix."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5), layout="constrained")
    lo, hi = np.inf, 0.0
    for label, df in tables.items():
        x, y = df[f"energy_base_{k}"].to_numpy(), df[f"energy_{k}"].to_numpy()
        ok = np.isfinite(y) & (y > 0)
        ax.scatter(x[ok], y[ok], s=10, label=label, alpha=0.7)
        if ok.any():
            lo, hi = min(lo, x[ok].min(), y[ok].min()), max(hi, x[ok].max(), y[ok].max())
    if hi > 0:
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="random (y = x)")
    scale = "log" if hi > 0 else "linear"  # a log axis needs a positive point (a zero update has none)
    ax.set(xscale=scale, yscale=scale, xlabel=f"random baseline k²/(mn), {k}",
           ylabel=f"energy in W0's top-k subspace, {k}", title="off-principal alignment")
    ax.legend(fontsize=7)
    return _save(fig, path)
