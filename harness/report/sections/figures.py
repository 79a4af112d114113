"""Figures: training curves (EMA-smoothed, raw faint beside) and the analyzer's and other sections' plots."""

from __future__ import annotations

from pathlib import Path

from harness.core.stats import ema
from harness.core.store import atomic_savefig
from harness.report.base import Context, section

# Curves panels: (train_log column, title). GRPO's loss is ~0 by construction: RLVR shows its reward.
PANELS = (("loss", "SFT loss", "sft"), ("reward", "RLVR mean reward", "rlvr"),
          ("frac_reward_zero_std", "RLVR: groups with zero advantage (no gradient)", "rlvr"),
          ("heldout_acc", "held-out accuracy during training", "any"))  # objective.heldout_every > 0
EMA_SPAN = 0.1  # EMA window as a share of the run's steps (at least 3 steps): alpha = 2 / (window + 1)


def alpha_for(steps: int) -> float:
    return 2.0 / (max(3.0, EMA_SPAN * steps) + 1.0)


def plot_curves(ctx: Context, out: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logs = []
    for row in ctx.sweep.done.to_dict("records"):
        log = ctx.sweep.run(row["run"]).train_log()
        if log is not None:
            logs.append((row, log))

    def shown(col: str, kind: str, log) -> bool:
        return col in log and (kind == "any" or (kind == "rlvr") == ("reward" in log)) and log[col].notna().any()

    panels = [p for p in PANELS if any(shown(p[0], p[2], log) for _, log in logs)]  # no empty panels
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 4), squeeze=False)
    axes = axes[0]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    drawn = False
    for i, (row, log) in enumerate(logs):
        label = f"{ctx.sweep.condition(row)} s{row['seed']}"
        for ax, (col, _, kind) in zip(axes, panels):
            if not shown(col, kind, log):
                continue
            c = colors[i % len(colors)]
            pts = log[["step", col]].dropna()  # held-out rows carry no loss/reward and vice versa
            if kind == "any":  # a few measured points: no smoothing
                ax.plot(pts["step"], pts[col], "o-", color=c, lw=1.2, ms=3, label=label)
            else:
                y = pts[col].to_numpy(dtype=float)
                ax.plot(pts["step"], y, color=c, alpha=0.2, lw=0.8)
                ax.plot(pts["step"], ema(y, alpha_for(len(y))), color=c, lw=1.6, label=label)
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    for ax, (_, title, _) in zip(axes, panels):
        ax.set(title=title, xlabel="step")
        if ax.lines:
            ax.legend(fontsize=6)
    fig.suptitle(f"EMA (span {EMA_SPAN:.0%} of steps, ≥ 3) over the raw values (faint)", fontsize=9)
    fig.tight_layout()
    atomic_savefig(fig, out)
    plt.close(fig)
    return out


@section(90, "figures", "Figures")
def render(ctx: Context) -> str | None:
    curves = plot_curves(ctx, ctx.out_dir / "curves.png")
    figs = ([curves] if curves else []) + sorted(p for p in ctx.sweep.path.glob("plots/*.png") if p.is_file())
    ctx.figures[:0] = figs  # the curves and the analyzer's plots first, other sections' after
    if not ctx.figures:
        return None
    return "\n".join(f"![{p.stem}]({p.relative_to(ctx.sweep.path).as_posix()})" for p in ctx.figures)
