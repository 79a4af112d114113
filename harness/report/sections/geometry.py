"""Table 1: update geometry and accuracy per group (adapter × objective × swept settings), every geometry
figure beside its random null: what a random ΔW of the same per-matrix Frobenius norm gives on the same W0."""

from __future__ import annotations

import pandas as pd

from harness.analysis.pairs import is_pair_study, pair_of
from harness.core.stats import distinguishable, seed_mean
from harness.report.base import NOT_DISTINGUISHABLE, Context, group_row, markdown, numeric, section, seed_cell

# (whole-model key of geometry_summary.json, its random-null key or None, header); {k} = the first k label
COLUMNS = (
    ("drift", "drift_null", "spectral drift"),
    ("drift_per_rel", None, "drift per unit ‖ΔW‖/‖W0‖"),
    ("angle_{k}", "angle_null_{k}", "angle° top-{kk} (mean over reliable matrices)"),
    ("angle_mean_{k}", "angle_mean_null_{k}", "mean principal angle° top-{kk}"),
    ("max_angle_{k}", "max_angle_null_{k}", "largest angle°"),
    ("vacuous_{k}", None, "matrices left out (vacuous Wedin bound)"),
    ("energy_{k}", "energy_base_{k}", "ΔW energy in W0 top-{kk}"),
    ("mask_overlap_{k}", "mask_overlap_null_{k}", "principal-mask overlap"),
    ("sparsity_bf16", None, "sparsity: identical in bf16 (cast)"),
    ("sparsity_rel1e3", None, "sparsity: relative 1e-3 rule"),
    ("sparsity_abs", None, "sparsity: abs Δ ≤ 1e-5 (fp32)"),
    ("eff_rank", None, "ΔW eff. rank"),
    ("rel_update", None, "‖ΔW‖/‖W0‖"),
)


def first_k(runs: pd.DataFrame) -> str:
    ks = sorted({c.split("geo:energy_base_")[1] for c in runs.columns if c.startswith("geo:energy_base_")})
    return "k16" if "k16" in ks else (ks[0] if ks else "k16")


def null_cell(g: pd.DataFrame, col: str, null: str | None) -> str:
    """``value ± hw (null x)``; marked n.d. when the 95 % interval over seeds of (value − null) includes 0,
    or there are fewer than two seeds to give one."""
    if col not in g:
        return "–"
    text = seed_cell(g[col])
    if text == "–" or null is None or null not in g:
        return text
    text += f" (null {seed_cell(g[null]).split(' ±')[0]})"
    value, base = pd.to_numeric(g[col], errors="coerce"), pd.to_numeric(g[null], errors="coerce")
    diff = seed_mean(numeric(value - base))
    # a difference at rounding level (e.g. the angles of a zero update) is no difference
    scale = float(max(numeric(value.abs()).max(initial=0), numeric(base.abs()).max(initial=0)))
    real = abs(diff.estimate) > 1e-9 * scale + 1e-12
    return text if real and distinguishable(diff.lo, diff.hi) else f"{text} {NOT_DISTINGUISHABLE}"


def stored(ctx: Context, run: str) -> str:
    pair = pair_of(ctx.sweep.run(run)) or {}
    return f"{pair.get('base_dtype', '?')} → {pair.get('tuned_dtype', '?')}"


def table1(ctx: Context) -> pd.DataFrame:
    done = ctx.runs[ctx.runs["status"] == "done"]
    pairs = is_pair_study(ctx.sweep)
    k = first_k(done)
    out = []
    for values, g in ctx.sweep.groups(done):
        row = group_row(values, g)
        for src, null, head in COLUMNS:
            col = "geo:" + src.format(k=k)
            row[head.format(kk=k[1:])] = null_cell(g, col, "geo:" + null.format(k=k) if null else None)
        if pairs:  # released checkpoints: what they are stored in, instead of accuracies the study lacks
            row["stored (base → tuned)"] = ", ".join(sorted({stored(ctx, r) for r in g["run"]}))
        else:
            row["ID accuracy gain"] = seed_cell(g["gain_id"], "{:+.3f}") if "gain_id" in g else "–"
            row["OOD change"] = seed_cell(g["change_ood"], "{:+.3f}") if "change_ood" in g else "–"
        out.append(row)
    return pd.DataFrame(out)


@section(10, "table1_geometry_accuracy", "Table 1 — update geometry and accuracy per adapter × objective")
def render(ctx: Context) -> str | None:
    t = table1(ctx)
    if t.empty:
        return None
    ctx.tables["table1_geometry_accuracy"] = t
    return ("Each geometry figure is shown beside its random null (a random ΔW with the run's per-matrix "
            "‖ΔW‖_F on the same W0; for the energy, the k²/(mn) baseline); **n.d.** = the 95 % interval over "
            "seeds of (figure − null) includes 0, or n < 2: not distinguishable from a random update of that "
            "size at this scale. Angles are the per-matrix largest principal angle of the top-k singular "
            "subspaces, averaged over the matrices whose Wedin bound is not vacuous (their count beside); "
            "`python -m harness.analyze <sweep> k=gap` uses a gap-aware k per matrix. The energy is the squared "
            "share ‖U_kᵀ ΔW V_k‖²_F / ‖ΔW‖²_F (some peers print the norm ratio, its square root). Sparsity, three "
            "criteria: entries identical after casting both weights to bf16 (the papers'), the relative rule "
            "|Δ| ≤ 1e-3·max(|w0|, |w1|) (equal to the first for weights stored in bf16, stricter on fp32), and "
            "|Δ| ≤ 1e-5 on the fp32 Δ. "
            + ("n = pairs of the group." if is_pair_study(ctx.sweep) else
               "Accuracy columns: see the Learning section for their intervals against the base.")
            + "\n\n" + markdown(t))
