"""What the claims read from a sweep: one row per done run with its measured values, and the run sets the
claims are estimated from, found only through :class:`harness.analysis.sweep.Sweep` grouping and pairing.

A pair study (:mod:`harness.analysis.pairs`) gives one row per analysed checkpoint pair instead, with its ``group``
(family key) and the storage dtypes of both checkpoints; the claims judge it group by group
(:meth:`ClaimData.only_group`), pairs in place of seeds.

Per run (:func:`claim_table`): the report's per-run values (:func:`harness.report.base.per_run`: whole-model
geometry as ``geo:<key>``, ``acc_id``/``gain_id``/``acc_ood``/``change_ood``, the ``entk_*`` figures), the
resolved settings the claims select on (``task_name``, ``beta``, ``dtype``, ``r``, ``criterion``, ``lr``;
``main_task``: trained on the task most runs of the sweep trained on), and from
``passk.json`` / ``kl.json`` / ``entk_steps.json`` when present ``passk_k``, ``pass1_*``/``passn_*``,
``kl_forward`` and ``entk_step_*``.
Nothing is retrained or re-measured here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.analysis.pairs import is_pair_study, pair_of
from harness.analysis.sweep import Sweep
from harness.claims.base import Part
from harness.core.stats import seed_mean

Select = Callable[[dict], bool]


def _num(x) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v


def claim_table(sweep: Sweep) -> pd.DataFrame:
    """The done runs, one row each, with every value a claim reads (see the module doc)."""
    from harness.analysis.sweep import per_run

    runs = per_run(sweep)
    if runs.empty:
        return runs
    runs = runs[runs["status"] == "done"].copy()
    if is_pair_study(sweep):
        return pair_table(sweep, runs)
    extra = []
    for name, objective in zip(runs["run"], runs["objective"]):
        run = sweep.run(name)
        lr = run.get("objective.lr")
        if lr is None:  # the adapter's default lr for this objective (objective.adapter_lr names the entry)
            lr = run.get(f"adapter.lr.{run.get('objective.adapter_lr') or objective}")
        row = {"task_name": str(run.get("task.name") or "–"),
               "beta": _num(run.get("objective.beta", 0.0)) if run.get("objective.beta") is not None else 0.0,
               "dtype": str(run.get("model.dtype") or "float32"), "r": _num(run.get("adapter.r")),
               "criterion": str(run.get("adapter.criterion") or "–"), "lr": _num(lr),
               "reward": str(run.get("objective.reward") or "verifier"),
               "delta_norm": _num((run.record or {}).get("delta_norm"))}  # ‖ΔW‖_F: every run.json has it
        pk = run.json("passk.json")
        if pk:
            row.update({"passk_k": len(pk.get("k") or []), "pass1_base": _num(pk.get("pass1_base")),
                        "pass1_run": _num(pk.get("pass1_run")), "passn_base": _num(pk.get("passn_base")),
                        "passn_run": _num(pk.get("passn_run")), "crossover_k": _num(pk.get("crossover_k"))})
        kl = run.json("kl.json")
        if kl:
            row["kl_forward"] = _num(kl.get("kl_forward"))
        steps = run.json("entk_steps.json")
        if steps and not steps.get("skipped"):
            row["entk_step_angle_per_rel"] = _num(steps.get("mean_angle_per_rel"))
            row["entk_step_intervals"] = len(steps.get("intervals") or [])
        extra.append(row)
    table = pd.concat([runs.reset_index(drop=True), pd.DataFrame(extra)], axis=1)
    # The study's task is the one most runs trained on; runs on other tasks serve the cross-dataset claims.
    table["main_task"] = table["task_name"] == table["task_name"].value_counts().idxmax()
    return table


def pair_table(sweep: Sweep, runs: pd.DataFrame) -> pd.DataFrame:
    """The done pairs of a pair study, with their group (family key) and the storage dtypes of both
    checkpoints (what the precision claims select on)."""
    extra = []
    for name in runs["run"]:
        pair = pair_of(sweep.run(name)) or {}
        extra.append({"group": str(pair.get("group") or "–"), "base_dtype": str(pair.get("base_dtype") or "–"),
                      "tuned_dtype": str(pair.get("tuned_dtype") or "–"), "algorithm": str(pair.get("algorithm") or ""),
                      "task_name": str(pair.get("dataset") or "–"), "main_task": True})
    return pd.concat([runs.drop(columns=["group"], errors="ignore").reset_index(drop=True), pd.DataFrame(extra)],
                     axis=1)


# --- run selection -------------------------------------------------------------------------------------


def ungated(row: dict) -> bool:
    """No KL penalty, trained in float32: the settings the gates of P5 vary."""
    return _num(row.get("beta")) == 0 and str(row.get("dtype")) in ("float32", "nan", "None")


def main_task(row: dict) -> bool:
    """Trained on the sweep's main task (runs on other tasks feed the cross-dataset claim only)."""
    return bool(row.get("main_task", True))


def verified(row: dict) -> bool:
    """Paid by the task's verifier (not a spurious reward: random, format-only, negated)."""
    return str(row.get("reward") or "verifier") in ("verifier", "nan", "None")


def plain(row: dict) -> bool:
    """A reference run: the study's main task, :func:`ungated` and :func:`verified`."""
    return main_task(row) and ungated(row) and verified(row)


def full_under(objective: str, reward: str = "verifier") -> Select:
    """Full fine-tuning under ``objective`` at the reference settings, paid ``reward`` (the spurious-reward arms
    are the verifier's runs with another reward)."""
    return lambda r: (r.get("adapter") == "full" and r.get("objective") == objective and main_task(r)
                      and ungated(r) and (verified(r) if reward == "verifier" else str(r.get("reward")) == reward))


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

    @property
    def pair_study(self) -> bool:
        """Whether the "runs" are released checkpoint pairs (:mod:`harness.analysis.pairs`): pairs in place of seeds."""
        return is_pair_study(self.sweep)

    def groups(self) -> list[str]:
        """A pair study's group keys (families), largest first."""
        if self.table.empty or "group" not in self.table:
            return []
        counts = self.table["group"].value_counts()
        return sorted(counts.index, key=lambda g: (-counts[g], str(g)))

    def only_group(self, group: str) -> ClaimData:
        """The same study restricted to the pairs of one group: every claim compares pairs of one family."""
        return ClaimData(self.sweep, self.table[self.table["group"] == group].reset_index(drop=True))

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
    """A :class:`Part` from per-seed (or per-pair) values: :func:`harness.core.stats.seed_mean` and its t-interval;
    NaN values are left out of n."""
    if needs or not len(values):
        return Part(name, null=null, side=side, needs=needs or "runs", runs=list(runs), note=note)
    s = seed_mean(np.asarray(values, dtype=float))
    return Part(name, s.estimate, s.lo, s.hi, s.n, null, side, runs=list(runs), note=note)


def two_groups(name: str, a: Sequence[float], b: Sequence[float], runs: Sequence[str], null: float, side: str,
               needs: str | None = None, note: str = "", labels: tuple[str, str] = ("RLVR", "SFT")) -> Part:
    """A :class:`Part` for unpaired units (released pairs of two objectives: no seed pairs them one to one):
    mean(a) − mean(b) with Welch's 95 % interval (scipy's ``ttest_ind``, unequal variances); n is the
    smaller group's size, so the rule's n ≥ 2 asks for two pairs on each side. NaN values are left out."""
    x, y = (np.asarray(v, dtype=float) for v in (a, b))
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    counts = f"Welch over {len(x)} {labels[0]} and {len(y)} {labels[1]} pairs"
    note = "; ".join(t for t in (counts, note) if t)
    if needs or not (len(x) and len(y)):
        return Part(name, null=null, side=side, needs=needs or "pairs of both objectives", runs=list(runs),
                    note=note, unit="pairs")
    est = float(x.mean() - y.mean())
    lo = hi = math.nan
    if len(x) >= 2 and len(y) >= 2:
        if x.var() + y.var() == 0:  # no spread on either side: the difference is exact
            lo = hi = est
        else:
            from scipy import stats as sps

            ci = sps.ttest_ind(x, y, equal_var=False).confidence_interval(0.95)
            lo, hi = float(ci.low), float(ci.high)
    return Part(name, est, lo, hi, min(len(x), len(y)), null, side, unit="pairs", runs=list(runs), note=note)


def div(a: float, b: float) -> float:
    """a/b, NaN where b is 0 or either is not finite (a zero update has no per-size figure)."""
    return a / b if b != 0 and math.isfinite(a) and math.isfinite(b) else math.nan


def log_ratio(a: float, b: float) -> float:
    """log(a/b) for positive a, b; NaN otherwise."""
    return math.log(a / b) if a > 0 and b > 0 and math.isfinite(a) and math.isfinite(b) else math.nan


def matched_differences(data: ClaimData, pred_a: Select, pred_b: Select, col: str, what: str,
                        sign: float = 1.0) -> tuple[list[float], list[str], str | None]:
    """Per seed, ``sign`` x (col of a − col of b) over the seed-matched runs of two conditions
    (:meth:`ClaimData.seed_matched`), the runs used, and what is missing (``what``: the runs, in words)."""
    pairs = data.seed_matched(pred_a, pred_b)
    runs = flat(pairs)
    if not pairs:
        return [], runs, f"{what}, same seeds (≥ 2)"
    if not data.has(col, runs):
        return [], runs, f"{col} of every run ({'eval.json' if col in EVAL_COLS else 'the analysis'})"
    return [sign * (data.value(a, col) - data.value(b, col)) for a, b in pairs], runs, None


EVAL_COLS = ("acc_id", "gain_id", "acc_ood", "change_ood")


def flat(pairs: Sequence[tuple[str, ...]]) -> list[str]:
    return [r for p in pairs for r in p]


# --- pair studies: released checkpoint pairs of one group, pairs in place of seeds -----------------------


def any_pair(row: dict) -> bool:
    """Every pair of the group counts (released checkpoints: no KL or precision setting to hold fixed)."""
    return True


def objective_sides(data: ClaimData, a: str = "rlvr", b: str = "sft") -> tuple[list[str], list[str], str | None]:
    """The pairs of objective ``a`` and of ``b`` in a pair study's group (unpaired: no seed matches them one to
    one), and what is missing to compare them."""
    side_a, side_b = ([] if data.table.empty else list(data.select(lambda r, o=o: r.get("objective") == o)["run"])
                      for o in (a, b))
    needs = None if side_a and side_b else f"{a.upper()} and {b.upper()} pairs in one group (≥ 2 each)"
    return side_a, side_b, needs or data.geo_needs(side_a + side_b)


def logs(data: ClaimData, runs: Sequence[str], col: str) -> list[float]:
    """log of a per-pair figure (NaN where it is not positive)."""
    return [log_ratio(data.value(r, col), 1.0) for r in runs]
