"""What the claims read from a sweep: one row per done run with its measured values, and the run sets the
claims are estimated from, found only through :class:`harness.sweep.Sweep` grouping and pairing.

Per run (:func:`claim_table`): the report's per-run values (:func:`harness.report.base.per_run`: whole-model
geometry as ``geo:<key>``, ``acc_id``/``gain_id``/``acc_ood``/``change_ood``, the ``entk_*`` figures), the
resolved settings the claims select on (``task_name``, ``beta``, ``dtype``, ``r``, ``criterion``, ``lr``;
``main_task``: trained on the task most runs of the sweep trained on), and from
``passk.json`` / ``kl.json`` when present ``passk_k``, ``pass1_*``/``passn_*`` and ``kl_forward``.
Nothing is retrained or re-measured here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.claims.base import Part
from harness.stats import seed_mean
from harness.sweep import Sweep

Select = Callable[[dict], bool]


def _num(x) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v


def claim_table(sweep: Sweep) -> pd.DataFrame:
    """The done runs, one row each, with every value a claim reads (see the module doc)."""
    from harness.report.base import per_run

    runs = per_run(sweep)
    if runs.empty:
        return runs
    runs = runs[runs["status"] == "done"].copy()
    extra = []
    for name, objective in zip(runs["run"], runs["objective"]):
        run = sweep.run(name)
        lr = run.get("objective.lr")
        if lr is None:  # the adapter's default lr for this objective (objective.adapter_lr names the entry)
            lr = run.get(f"adapter.lr.{run.get('objective.adapter_lr') or objective}")
        row = {"task_name": str(run.get("task.name") or "–"),
               "beta": _num(run.get("objective.beta", 0.0)) if run.get("objective.beta") is not None else 0.0,
               "dtype": str(run.get("model.dtype") or "float32"), "r": _num(run.get("adapter.r")),
               "criterion": str(run.get("adapter.criterion") or "–"), "lr": _num(lr)}
        pk = run.json("passk.json")
        if pk:
            row.update({"passk_k": len(pk.get("k") or []), "pass1_base": _num(pk.get("pass1_base")),
                        "pass1_run": _num(pk.get("pass1_run")), "passn_base": _num(pk.get("passn_base")),
                        "passn_run": _num(pk.get("passn_run")), "crossover_k": _num(pk.get("crossover_k"))})
        kl = run.json("kl.json")
        if kl:
            row["kl_forward"] = _num(kl.get("kl_forward"))
        extra.append(row)
    table = pd.concat([runs.reset_index(drop=True), pd.DataFrame(extra)], axis=1)
    # The study's task is the one most runs trained on; runs on other tasks serve the cross-dataset claims.
    table["main_task"] = table["task_name"] == table["task_name"].value_counts().idxmax()
    return table


# --- run selection -------------------------------------------------------------------------------------


def ungated(row: dict) -> bool:
    """No KL penalty, trained in float32: the settings the gates of P5 vary."""
    return _num(row.get("beta")) == 0 and str(row.get("dtype")) in ("float32", "nan", "None")


def main_task(row: dict) -> bool:
    """Trained on the sweep's main task (runs on other tasks feed the cross-dataset claim only)."""
    return bool(row.get("main_task", True))


def plain(row: dict) -> bool:
    """A reference run: the study's main task and :func:`ungated`."""
    return main_task(row) and ungated(row)


def full_ref(row: dict) -> bool:
    """Full fine-tuning, reference settings: the runs the papers' SFT-vs-RLVR figures compare."""
    return row.get("adapter") == "full" and plain(row)


@dataclass
class ClaimData:
    """A sweep and its per-run values, with the run sets the claims use."""

    sweep: Sweep
    table: pd.DataFrame

    @classmethod
    def load(cls, sweep: Sweep) -> ClaimData:
        return cls(sweep, claim_table(sweep))

    def row(self, run: str) -> dict:
        return self.table[self.table["run"] == run].iloc[0].to_dict()

    def value(self, run: str, col: str) -> float:
        if col not in self.table:
            return math.nan
        return _num(self.row(run).get(col))

    def has(self, col: str, runs: Sequence[str]) -> bool:
        """Whether ``col`` is measured (finite) for every run of ``runs``."""
        return bool(runs) and all(math.isfinite(self.value(r, col)) for r in runs)

    def geo_needs(self, runs: Sequence[str], col: str = "geo:drift") -> str | None:
        """What a geometry claim lacks on ``runs``: the analysis, or a nonzero update (a run whose ΔW is 0
        trained nothing, and every per-size figure of it is undefined)."""
        if not self.has(col, runs):
            return "geometry_summary.json (python -m harness.analyze <sweep>)"
        still = [r for r in runs if not self.value(r, "geo:rel_update") > 0]
        return f"a nonzero update (ΔW = 0 in {len(still)} of {len(runs)} runs)" if still else None

    def select(self, pred: Select) -> pd.DataFrame:
        if self.table.empty:
            return self.table
        keep = [bool(pred(r)) for r in self.table.to_dict("records")]
        return self.table[keep]

    def objective_pairs(self, pred: Select, a: str = "rlvr", b: str = "sft") -> list[tuple[str, str]]:
        """(run of ``a``, run of ``b``) pairs that differ only in the objective (:meth:`Sweep.pairs`: same
        seed, every other swept setting equal), both runs satisfying ``pred``. When the pairs fall into
        several conditions, the condition with the most pairs is taken (never pooled)."""
        rows = self.select(pred)
        if rows.empty:
            return []
        objective = dict(zip(rows["run"], rows["objective"]))
        by_cond: dict[tuple, list[tuple[str, str]]] = {}
        for x, y, shared in self.sweep.pairs("objective", rows):
            pair = {objective[x]: x, objective[y]: y}
            if set(pair) == {a, b}:
                key = tuple(sorted((k, str(v)) for k, v in shared.items() if k != "seed"))
                by_cond.setdefault(key, []).append((pair[a], pair[b]))
        if not by_cond:
            return []
        return max(by_cond.values(), key=len)

    def group(self, pred: Select) -> pd.DataFrame:
        """The runs (seeds) of one condition (:meth:`Sweep.groups`) satisfying ``pred``: the condition with
        the most runs (first in sort order on a tie); empty when none."""
        rows = self.select(pred)
        best = pd.DataFrame()
        for _, g in self.sweep.groups(rows):
            if len(g) > len(best):
                best = g
        return best

    def seed_matched(self, pred_a: Select, pred_b: Select) -> list[tuple[str, str]]:
        """Runs of two conditions (each :meth:`group`) matched by seed: the cross-adapter comparisons."""
        ga, gb = self.group(pred_a), self.group(pred_b)
        if ga.empty or gb.empty:
            return []
        b_by_seed = dict(zip(gb["seed"], gb["run"]))
        return [(r, b_by_seed[s]) for r, s in zip(ga["run"], ga["seed"]) if s in b_by_seed]

    def seed_pairs(self, pred: Select) -> list[tuple[str, str]]:
        """Pairs of runs of one condition that differ only in the seed (:meth:`Sweep.pairs`)."""
        g = self.group(pred)
        return [(a, b) for a, b, _ in self.sweep.pairs("seed", g)] if len(g) else []


def over_seeds(name: str, values: Sequence[float], runs: Sequence[str], null: float, side: str,
               needs: str | None = None, note: str = "") -> Part:
    """A :class:`Part` from per-seed (or per-pair) values: :func:`harness.stats.seed_mean` and its t-interval;
    NaN values are left out of n."""
    if needs or not len(values):
        return Part(name, null=null, side=side, needs=needs or "runs", runs=list(runs), note=note)
    s = seed_mean(np.asarray(values, dtype=float))
    return Part(name, s.estimate, s.lo, s.hi, s.n, null, side, runs=list(runs), note=note)


def div(a: float, b: float) -> float:
    """a/b, NaN where b is 0 or either is not finite (a zero update has no per-size figure)."""
    return a / b if b != 0 and math.isfinite(a) and math.isfinite(b) else math.nan


def log_ratio(a: float, b: float) -> float:
    """log(a/b) for positive a, b; NaN otherwise."""
    return math.log(a / b) if a > 0 and b > 0 and math.isfinite(a) and math.isfinite(b) else math.nan


def flat(pairs: Sequence[tuple[str, ...]]) -> list[str]:
    return [r for p in pairs for r in p]
