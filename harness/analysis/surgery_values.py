"""The per-run figures of ΔW surgery (``surgery.json``) and of the update trajectory (``trajectory_summary.json``,
``trajectory_eval.json``) that the claims and the report read: one definition each, added to
:func:`harness.analysis.sweep.per_run`'s row.

Surgery, per edit (column prefix ``surg:<edit key>:``, the key :func:`edit_key` names the edit by its registered
name and parameters, not by the config entry's name, so claims find "rank k=1" whatever the entry is called):

- ``kept_id`` / ``kept_ood``: the fraction of the run's change the edited model keeps, mean over the held-out
  (``id``) / OOD tasks whose fraction is defined (:func:`harness.measure.surgery.kept_fraction`: undefined when
  the run's change is not told apart from 0); NaN when none is, with the reason in ``why_id`` / ``why_ood``;
- ``null_kept_id`` / ``null_kept_ood``: the same for the edit's norm-matched random null;
- ``recovered_ood``: over the OOD tasks the run *lost* on (change < 0, told apart from 0), the mean share of
  that loss the edit gives back, 1 − kept (restoring the base's directions undoes forgetting); ``why_recovered``;
- ``norm_ratio``: ‖T(ΔW)‖_F/‖ΔW‖_F; ``entry`` the config entry's name; ``edit`` the registered edit.

Trajectory (column prefix ``traj:``): ``r2_rank1``, ``r2_linear``, ``extrap_rel_err`` (whole model),
``extrap_delta`` (extrapolated − trained accuracy, mean over the held-out tasks of ``trajectory_eval.json``; all
its tasks when eval.json does not say which are held-out) and ``pulse_bf16_changed`` (the mean over optimizer steps
of the whole-model share of bf16-stored values changed in a step; PULSE's sparsity is 1 − it).
"""

from __future__ import annotations

import math
from typing import Any

# The family of each registered edit: the report draws one figure per family.
FAMILY = {"rank": "rank", "onto_topk": "subspace", "off_topk": "subspace", "principal_mask": "mask",
          "off_mask": "mask", "layers": "layers-module", "module": "layers-module", "restore_top": "restore",
          "scale": "scale"}
BF16 = "bfloat16"


def edit_key(edit: str, params: dict | None) -> str:
    """``rank k=1``: an edit named by what it does (its registered name and its parameters, sorted)."""
    args = " ".join(f"{k}={params[k]:g}" if isinstance(params[k], float) else f"{k}={params[k]}"
                    for k in sorted(params or {}))
    return f"{edit} {args}".strip()


def _num(x: Any) -> float:
    try:
        return math.nan if x is None else float(x)
    except (TypeError, ValueError):
        return math.nan


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def _kept(rows: dict, names: list[str]) -> tuple[float, str | None]:
    """Mean fraction kept over ``names`` where it is defined; NaN and the first reason when none is."""
    vals = [_num(rows.get(n, {}).get("kept")) for n in names]
    ok = [v for v in vals if math.isfinite(v)]
    if ok:
        return _mean(ok), None
    why = next((rows.get(n, {}).get("kept_reason") for n in names if rows.get(n, {}).get("kept_reason")), None)
    return math.nan, why or ("no task of this split" if not names else "no fraction kept")


def surgery_values(surgery: dict | None) -> dict[str, Any]:
    """The ``surg:*`` columns of one run's ``surgery.json`` (empty without the file)."""
    if not surgery:
        return {}
    tasks = surgery.get("tasks") or {}
    split = {s: [n for n, t in tasks.items() if t.get("split") == s] for s in ("id", "ood")}
    lost = [n for n in split["ood"] if tasks[n].get("change_distinguishable") and _num(tasks[n].get("change")) < 0]
    out: dict[str, Any] = {}
    for entry, e in (surgery.get("edits") or {}).items():
        p = f"surg:{edit_key(e.get('edit', entry), e.get('params'))}:"
        rows, null = e.get("tasks") or {}, (e.get("random") or {}).get("tasks") or {}
        out[p + "entry"], out[p + "edit"], out[p + "norm_ratio"] = entry, e.get("edit"), _num(e.get("norm_ratio"))
        for s in ("id", "ood"):
            out[f"{p}kept_{s}"], out[f"{p}why_{s}"] = _kept(rows, split[s])
            out[f"{p}null_kept_{s}"] = _kept(null, split[s])[0] if null else math.nan
        rec = [1.0 - _num(rows.get(n, {}).get("kept")) for n in lost]
        out[p + "recovered_ood"] = _mean([v for v in rec if math.isfinite(v)])
        out[p + "why_recovered"] = None if lost else (
            "no OOD task where the run lost accuracy told apart from 0: no loss to recover")
    return out


def trajectory_values(summary: dict | None, extrapolated: dict | None, evaluation: dict | None) -> dict[str, float]:
    """The ``traj:*`` columns of a run's ``trajectory_summary.json`` / ``trajectory_eval.json`` (its eval.json
    names the held-out tasks)."""
    out: dict[str, float] = {}
    if summary:
        whole = summary.get("whole") or {}
        for k in ("r2_rank1", "r2_linear", "extrap_rel_err"):
            out[f"traj:{k}"] = _num(whole.get(k))
        out["traj:pulse_bf16_changed"] = _num(((summary.get("pulse") or {}).get(BF16) or {}).get("mean_changed"))
    if extrapolated:
        tasks = extrapolated.get("tasks") or {}
        split = {n: t.get("split") for n, t in ((evaluation or {}).get("tasks") or {}).items()}
        held = [n for n in tasks if split.get(n) == "id"] or list(tasks)
        out["traj:extrap_delta"] = _mean([v for v in (_num(tasks[n].get("delta")) for n in held) if math.isfinite(v)])
    return out


def edit_keys(columns) -> list[str]:
    """The edit keys present in a per-run table's columns, in column order."""
    return list(dict.fromkeys(c.split(":")[1] for c in columns if str(c).startswith("surg:") and c.endswith(":edit")))
