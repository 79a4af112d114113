"""Every claim judged on one sweep: the table (``claims.csv``, ``claims.md``) and the forest plot."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from harness.analysis.sweep import Sweep
from harness.claims.base import CONTRADICTED, INCONCLUSIVE, SUPPORTED, Claim, Result, ordered
from harness.claims.data import ClaimData
from harness.core.store import atomic_savefig, atomic_write_text

COLORS = {SUPPORTED: "#2e7d32", CONTRADICTED: "#c62828", INCONCLUSIVE: "#9e9e9e"}
COLUMNS = ["id", "claim", "source", "statistic", "estimate [95% CI]", "null / threshold", "source's figure",
           "verdict", "reason", "runs used"]


def judge_all(sweep: Sweep) -> list[tuple[Claim, Result]]:
    """Each registered claim's estimate and verdict on ``sweep`` (a pair study: on its largest group, see
    :func:`judge_groups`)."""
    data = ClaimData.load(sweep)
    if data.pair_study:
        groups = judge_groups(data)
        return groups[0][1] if groups else []
    return [(c, c.rule(c.estimate(data))) for c in ordered()]


def judge_groups(data: ClaimData) -> list[tuple[str, list[tuple[Claim, Result]]]]:
    """A pair study, group by group (largest first): every claim that released weights can answer
    (:attr:`Claim.pairs`), on the pairs of that group only, pairs in place of seeds."""
    out = []
    for group in data.groups():
        sub = data.only_group(group)
        results = []
        for c in ordered():
            if c.pairs is None:
                continue
            parts = c.pairs(sub)
            for p in parts:
                p.unit = "pairs" if p.unit == "seeds" else p.unit
            results.append((c, c.rule(parts)))
        out.append((group, results))
    return out


def not_on_pairs() -> list[str]:
    """Claims that need what only training runs measure (accuracy, eNTK, pass@k, KL, pass rates)."""
    return [c.id for c in ordered() if c.pairs is None]


def _ci(p) -> str:
    if p.needs or not math.isfinite(p.estimate):
        return "–"
    text = f"{p.estimate:.3g}"
    if math.isfinite(p.lo) and math.isfinite(p.hi):
        text += f" [{p.lo:.3g}, {p.hi:.3g}]"
    return text + f" (n={p.n} {p.unit})"


def claims_frame(results: list[tuple[Claim, Result]]) -> pd.DataFrame:
    """One row per claim (COLUMNS) plus the primary part's numbers (``estimate``, ``lo``, ``hi``, ``null``)."""
    rows = []
    for c, r in results:
        p = r.primary
        notes = "; ".join(dict.fromkeys(x.note for x in r.parts if x.note))
        rows.append({"id": c.id, "claim": c.claim, "source": c.source, "statistic": f"{p.name} — {c.statistic}",
                     "estimate [95% CI]": _ci(p), "null / threshold": c.null, "source's figure": c.source_figure,
                     "verdict": r.verdict, "reason": r.reason + (f" ({notes})" if notes else ""),
                     "runs used": len(r.runs), "estimate": p.estimate, "lo": p.lo, "hi": p.hi, "null": p.null,
                     "n": p.n, "run names": " ".join(r.runs)})
    return pd.DataFrame(rows)


def markdown_table(df: pd.DataFrame) -> str:
    cols = [c for c in COLUMNS if c != "reason"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        cells = [str(r[c]).replace("|", "/") for c in cols]
        cells[cols.index("verdict")] = f"**{r['verdict']}**"
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Reasons:", ""] + [f"- **{r['id']}** ({r['verdict']}): {r['reason']}" for _, r in df.iterrows()]
    return "\n".join(lines)


def forest_plot(df: pd.DataFrame, path: Path) -> Path | None:
    """Each claim's primary effect minus its null, with its 95 % interval, coloured by verdict; the null at 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if df.empty:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 0.42 * len(df) + 1.2))
    for i, r in enumerate(df.itertuples()):
        y = len(df) - 1 - i
        color = COLORS.get(r.verdict, "#000")
        if math.isfinite(r.estimate):
            x = r.estimate - r.null
            if math.isfinite(r.lo) and math.isfinite(r.hi):
                ax.plot([r.lo - r.null, r.hi - r.null], [y, y], color=color, lw=2)
            ax.plot([x], [y], "o", color=color)
        else:
            ax.text(0, y, "  no estimate", va="center", fontsize=7, color=color)
    ax.axvline(0, color="k", lw=0.8, ls="--")
    ax.set_yticks(range(len(df)), [f"{r.id}" for r in df.itertuples()][::-1])
    ax.set_xlabel("estimate − null (each claim's own statistic, see the table)")
    handles = [plt.Line2D([], [], color=c, marker="o", lw=2, label=v) for v, c in COLORS.items()]
    ax.legend(handles=handles, fontsize=7, loc="best")
    fig.tight_layout()
    atomic_savefig(fig, path)
    plt.close(fig)
    return path


PAIRS_TEXT = ("Pair study: each group (family key) is judged on its own pairs, pairs in place of seeds: a claim on one "
              "objective is a mean over its pairs with the t-interval; RLVR vs SFT is Welch's difference over the "
              "two sets of pairs (released pairs are not matched one to one); cross-pair agreement (P4, S1) uses "
              "pairs from one base. n = pairs (the smaller side for Welch).")


def write_pair_claims(data: ClaimData, out_dir: Path) -> tuple[pd.DataFrame, str, Path | None]:
    """A pair study's claims: one table per group, one forest plot (rows ``id · group``)."""
    frames, sections = [], []
    for group, results in judge_groups(data):
        df = claims_frame(results)
        df.insert(0, "group", group)
        frames.append(df)
        n = int((data.table["group"] == group).sum())
        sections.append(f"### Group `{group}` ({n} pairs)\n\n{markdown_table(df)}\n")
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["group", *COLUMNS])
    df.to_csv(out_dir / "claims.csv", index=False)
    shown = df.assign(id=[f"{i} · {g}" for i, g in zip(df["id"], df["group"])]) if len(frames) > 1 else df
    plot = forest_plot(shown, out_dir / "claims_forest.png")
    skipped = ", ".join(not_on_pairs())
    text = (f"{PAIRS_TEXT} Not judged on pairs (they need training-time measurements): {skipped}.\n\n"
            f"{VERDICT_TEXT}\n\n" + "\n".join(sections))
    if plot:
        text += f"\n![claims forest plot]({plot.name})\n"
    atomic_write_text(out_dir / "claims.md", text)
    return df, text, plot


VERDICT_TEXT = ("Supported: the interval lies on the predicted side of the null; contradicted: on the other side; "
                "inconclusive at this scale: it spans the null, n < 2, or pairs/artifacts are missing "
                "(\"needs: ...\").")


def write_claims(sweep: Sweep, out_dir: Path | None = None) -> tuple[pd.DataFrame, str, Path | None]:
    """Judge every claim; write ``claims.csv``, ``claims.md`` and ``claims_forest.png`` into ``out_dir``
    (default: the sweep dir); return the table, the markdown and the plot's path. A pair study gets one
    table per group (:func:`write_pair_claims`)."""
    out_dir = Path(out_dir or sweep.path)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = ClaimData.load(sweep)
    if data.pair_study:
        return write_pair_claims(data, out_dir)
    df = claims_frame([(c, c.rule(c.estimate(data))) for c in ordered()])
    df.to_csv(out_dir / "claims.csv", index=False)
    plot = forest_plot(df, out_dir / "claims_forest.png")
    text = (f"Each row: the claim, its source, our statistic with its 95 % interval over seeds (or prompts where "
            f"stated), the null it is held against, the source's own figure, and the verdict the rule beside the "
            f"claim (harness/claims/) gives. Supported: the interval lies on the predicted side of the null; "
            f"contradicted: on the other side; inconclusive at this scale: it spans the null, n < 2 seeds, or "
            f"runs/artifacts are missing (\"needs: ...\").\n\n{markdown_table(df)}\n")
    if plot:
        text += f"\n![claims forest plot]({plot.name})\n"
    atomic_write_text(out_dir / "claims.md", text)
    return df, text, plot
