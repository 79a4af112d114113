"""Aggregates of the per-matrix table: by module type, by layer, whole model (parameter-weighted)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from harness.geometry.metrics import Settings
from harness.geometry.sources import MODULES

ID_COLUMNS = ("name", "layer", "module", "m", "n")


def _weighted(x: pd.Series, w: pd.Series) -> float:
    ok = x.notna()
    return float(np.average(x[ok], weights=w[ok])) if ok.any() and w[ok].sum() > 0 else math.nan


def aggregate_rows(df: pd.DataFrame) -> dict[str, float]:
    """Parameter-weighted means (NaN-skipping) of the metrics of some matrices; norms add in quadrature;
    ``max_angle_<k>`` is the largest angle over the matrices."""
    out: dict[str, float] = {"matrices": len(df), "params": int(df["params"].sum())}
    for col in df.columns:
        if col in ID_COLUMNS or col == "params" or col.startswith("k_"):
            continue
        if col in ("delta_fro", "w0_fro"):
            out[col] = float(np.sqrt((df[col] ** 2).sum()))
        elif col == "rel_update":
            continue
        else:
            out[col] = _weighted(df[col], df["params"])
        if col.startswith("angle_") and not col.startswith(("angle_u_", "angle_v_", "angle_bound")):
            out[f"max_{col}"] = float(df[col].max())
    out["rel_update"] = out["delta_fro"] / out["w0_fro"] if out.get("w0_fro") else math.nan
    return out


def aggregate(df: pd.DataFrame) -> dict[str, dict]:
    """Whole model, by module type (q, k, v, o, gate, up, down, then others) and by layer."""
    order = {m: i for i, m in enumerate(MODULES)}
    mods = sorted(df["module"].unique(), key=lambda m: (order.get(m, len(order)), m))
    return {
        "whole_model": aggregate_rows(df),
        "by_module": {m: aggregate_rows(df[df["module"] == m]) for m in mods},
        "by_layer": {str(int(lay)): aggregate_rows(g) for lay, g in df.groupby("layer", sort=True)},
    }


def jsonable(obj):
    """NaN/inf -> None so the summary is strict JSON."""
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def summary_header(settings: Settings) -> str:
    k = settings.labels()[0]
    return (f"{'run':<28} {'drift':>9} {'angle°(' + k + ')':>12} {'max°':>7} {'sparsity bf16/abs':>18} "
            f"{'eff.rank':>9} {'energy(' + k + ')':>12} {'random':>9}")


def summary_line(label: str, whole: dict, settings: Settings) -> str:
    """One line per run: the whole-model numbers the issue asks to print."""
    k = settings.labels()[0]

    def g(key: str) -> float:
        v = whole.get(key)
        return math.nan if v is None else v

    sp = f"{g('sparsity_bf16'):.3f} / {g('sparsity_abs'):.3f}"
    return (f"{label[:28]:<28} {g('drift'):9.2e} {g('angle_' + k):12.4f} {g('max_angle_' + k):7.3f} "
            f"{sp:>18} {g('eff_rank'):9.2f} {g('energy_' + k):12.3e} {g('energy_base_' + k):9.2e}")
