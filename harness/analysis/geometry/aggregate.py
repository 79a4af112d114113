"""Aggregates of the per-matrix table: by module type, by layer, whole model (parameter-weighted)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from harness.analysis.geometry.metrics import Settings
from harness.analysis.geometry.sources import MODULES

ID_COLUMNS = ("name", "layer", "module", "m", "n")


def _weighted(x: pd.Series, w: pd.Series) -> float:
    ok = x.notna()
    return float(np.average(x[ok], weights=w[ok])) if ok.any() and w[ok].sum() > 0 else math.nan


def labels_of(df: pd.DataFrame) -> list[str]:
    """The k labels of a per-matrix table (from its ``k_<label>`` columns)."""
    return [c.removeprefix("k_") for c in df.columns if c.startswith("k_")]


def reliable(df: pd.DataFrame) -> pd.DataFrame:
    """The table with every angle figure of a matrix whose Wedin bound is vacuous (≥ 1, or the gap closed)
    at that k set to NaN: such an angle may be a swap of near-tied directions, not a rotation by the update,
    so the aggregates leave it out (its null too, so figure and null cover the same matrices)."""
    df = df.copy()
    for label in labels_of(df):
        if f"wedin_{label}" not in df:
            continue
        vac = ~(df[f"wedin_{label}"] < 1)  # NaN (no bound) counts as vacuous too
        cols = [c for c in df.columns if c.startswith("angle_") and c.endswith(f"_{label}")
                and not c.startswith("angle_bound")]
        df.loc[vac, cols] = math.nan
    return df


def aggregate_rows(df: pd.DataFrame) -> dict[str, float]:
    """Parameter-weighted means (NaN-skipping) of the metrics of some matrices; norms add in quadrature;
    ``max_angle_<k>`` (and ``max_angle_null_<k>``) the largest angle over the matrices. Angles of matrices
    with a vacuous Wedin bound are left out, counted in ``vacuous_<k>`` (``angle_all_<k>``: the mean with them
    in; NaN angles where every matrix is vacuous: use ``k=gap``); ``median_wedin_<k>`` and
    ``median_gap_<k>`` summarise the reliability (their means would be dominated by near-ties)."""
    out: dict[str, float] = {"matrices": len(df), "params": int(df["params"].sum())}
    labels = labels_of(df)
    for label in labels:
        if f"wedin_{label}" in df:
            out[f"vacuous_{label}"] = int((~(df[f"wedin_{label}"] < 1)).sum())
            # the same mean with the vacuous angles in (what it was before they were left out), for reference
            out[f"angle_all_{label}"] = _weighted(df[f"angle_{label}"], df["params"])
    ok = reliable(df)
    for col in df.columns:
        if col in ID_COLUMNS or col == "params" or col.startswith("k_"):
            continue
        if col in ("delta_fro", "w0_fro"):
            out[col] = float(np.sqrt((df[col] ** 2).sum()))
        elif col == "rel_update":
            continue
        elif col.startswith(("gap_", "wedin_")):
            x = df[col].dropna()
            out[f"median_{col}"] = float(x.median()) if len(x) else math.nan
        else:
            out[col] = _weighted(ok[col], df["params"])
        if any(col in (f"angle_{lab}", f"angle_null_{lab}") for lab in labels):
            x = ok[col].dropna()
            out[f"max_{col}"] = float(x.max()) if len(x) else math.nan
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
    return (f"{'run':<28} {'drift':>9} {'[null]':>9} {'angle°(' + k + ')':>12} {'[null]':>7} {'max°':>7} "
            f"{'vacuous':>7} {'sparsity bf16/rel/abs':>21} {'eff.rank':>9} {'energy(' + k + ')':>12} {'random':>9}")


def summary_line(label: str, whole: dict, settings: Settings) -> str:
    """One line per run: the whole-model numbers, each figure beside its same-size random null."""
    k = settings.labels()[0]

    def g(key: str) -> float:
        v = whole.get(key)
        return math.nan if v is None else v

    sp = f"{g('sparsity_bf16'):.3f}/{g('sparsity_rel1e3'):.3f}/{g('sparsity_abs'):.3f}"
    vac = f"{int(g('vacuous_' + k))}/{int(g('matrices'))}" if whole.get("vacuous_" + k) is not None else "-"
    return (f"{label[:28]:<28} {g('drift'):9.2e} {g('drift_null'):9.2e} {g('angle_' + k):12.4f} "
            f"{g('angle_null_' + k):7.4f} {g('max_angle_' + k):7.3f} {vac:>7} {sp:>21} {g('eff_rank'):9.2f} "
            f"{g('energy_' + k):12.3e} {g('energy_base_' + k):9.2e}")
