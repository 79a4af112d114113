"""The run artifact contract, read in one place.

A run directory (:class:`RunDir`) holds what a run wrote (``run.json``, ``.hydra/``, ``train_log.jsonl``,
``delta.safetensors``, ``eval.json``, ``entk.json``, ``prompts.csv``, ``ledger.csv``, and the analyzer's
``geometry*``); :func:`load_sweep` turns a sweep directory into one table, one row per run, whose setting
columns are found one way: every override that varies across the sweep, except ``seed`` and the keys that
only say where a job runs (:data:`harness.core.overrides.LAUNCH_KEYS`). Every table and figure groups and pairs
runs through :class:`Sweep`, so runs that differ in any swept setting are never pooled or paired by accident.

Reading only: nothing here imports training code.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.core.overrides import is_launch_key, split_override
from harness.core.stats import numeric
from harness.core.store import read_json

RUN_JSON = "run.json"
DELTA = "delta.safetensors"
# Identity columns of every table: the chosen adapter and objective (config group options).
IDENTITY = ("adapter", "objective")
SKIPPED = "skipped"  # run.json status of a grid cell a study leaves out on purpose (``run_objectives``)


class RunDir:
    """One run directory and readers for its artifacts (each None when the artifact is missing/unreadable)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name

    # --- identity ----------------------------------------------------------------------------------------

    @functools.cached_property
    def record(self) -> dict | None:
        """``run.json``: status, reason, timings, versions, seed, base_dir."""
        return read_json(self.path / RUN_JSON)

    @property
    def status(self) -> str:
        return (self.record or {}).get("status") or "missing"

    @property
    def reason(self) -> str:
        if self.record is None:
            return "run.json missing or unreadable"
        return self.record.get("reason") or ""

    @functools.cached_property
    def config(self) -> Any:
        """The resolved config (``.hydra/config.yaml``) as an OmegaConf node, or None."""
        from omegaconf import OmegaConf

        try:
            return OmegaConf.load(self.path / ".hydra" / "config.yaml")
        except (OSError, ValueError):
            return None

    def get(self, key: str, default: Any = None) -> Any:
        """A resolved config value by dotted key (``objective.steps``), else ``default``."""
        from omegaconf import OmegaConf

        if self.config is None:
            return default
        value = OmegaConf.select(self.config, key, default=default)
        return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value

    @functools.cached_property
    def overrides(self) -> dict[str, str]:
        """The job's overrides (command line and sweep parameters) as ``{key: value}``."""
        from omegaconf import OmegaConf

        try:
            items = OmegaConf.to_container(OmegaConf.load(self.path / ".hydra" / "overrides.yaml")) or []
        except (OSError, ValueError):
            return {}
        return dict(split_override(str(i)) for i in items)

    @functools.cached_property
    def choices(self) -> dict[str, str]:
        """Config group options chosen for this job (``adapter: lora``), from ``.hydra/hydra.yaml``."""
        from omegaconf import OmegaConf

        try:
            hydra = OmegaConf.load(self.path / ".hydra" / "hydra.yaml")
            return {str(k): str(v) for k, v in (OmegaConf.select(hydra, "hydra.runtime.choices") or {}).items()}
        except (OSError, ValueError):
            return {}

    def identity(self, key: str) -> str:
        """The adapter/objective option of the run (the group option, else the config's name)."""
        return str(self.choices.get(key) or self.get(f"{key}.name") or (self.record or {}).get(key) or "?")

    @property
    def seed(self) -> int | None:
        seed = self.get("seed", (self.record or {}).get("seed"))
        try:
            return int(seed)
        except (TypeError, ValueError):
            return None

    def setting(self, key: str) -> str:
        """A setting's value as a table shows it: the override, else the resolved config value, else '–'."""
        if key in self.overrides:
            return self.overrides[key]
        value = self.choices.get(key) if "." not in key else None
        if value is None:
            value = self.get(key)
        return "–" if value is None else str(value)

    # --- artifacts ---------------------------------------------------------------------------------------

    def file(self, name: str) -> Path:
        return self.path / name

    def json(self, name: str) -> dict | None:
        return read_json(self.path / name)

    def eval(self) -> dict | None:
        """``eval.json``: downstream accuracies per lm-eval task."""
        return self.json("eval.json")

    def entk(self) -> dict | None:
        return self.json("entk.json")

    def geometry_summary(self, name: str = "geometry_summary.json") -> dict | None:
        return self.json(name)

    def csv(self, name: str, **kw) -> pd.DataFrame | None:
        try:
            return pd.read_csv(self.path / name, **kw)
        except (OSError, ValueError):
            return None

    def prompts(self) -> pd.DataFrame | None:
        return self.csv("prompts.csv", dtype={"prompt_id": str, "group": str})

    def train_log(self) -> pd.DataFrame | None:
        try:
            log = pd.read_json(self.path / "train_log.jsonl", lines=True)
        except (OSError, ValueError):
            return None
        return None if log.empty else log

    def eval_samples(self) -> list[dict]:
        """``eval_samples.jsonl``: per lm-eval sample the task, prompt id, prompt, completion, target and score."""
        try:
            lines = (self.path / "eval_samples.jsonl").read_text().splitlines()
        except OSError:
            return []
        return [json.loads(line) for line in lines if line.strip()]

    def correct_rollouts(self) -> dict[str, list[dict]]:
        """``correct_rollouts.jsonl`` of an RL run: {prompt id: [{"step", "ids", "text"}, ...]} (empty without)."""
        from harness.measure.ledger import read_correct_rollouts

        return read_correct_rollouts(self.path / "correct_rollouts.jsonl")

    def examples(self) -> dict[str, Any] | None:
        """The run's task examples (training and held-out) by prompt id, rebuilt from its resolved ``task``
        config (prompts are generated from it, not stored); None when it cannot be rebuilt (a moved file)."""
        task = self.get("task")
        if not isinstance(task, dict):
            return None
        return _examples(json.dumps(task, sort_keys=True))

    def delta(self):
        """The stored ΔW (:class:`harness.analysis.geometry.sources.RunDelta`, read lazily by tensor name)."""
        from harness.analysis.geometry.sources import RunDelta

        return RunDelta(self.path / DELTA)

    @property
    def base_dir(self) -> str | None:
        return (self.record or {}).get("base_dir")


@functools.lru_cache(maxsize=8)
def _examples(task_json: str) -> dict[str, Any] | None:
    """Prompt id -> example of the task a config describes (cached: a sweep's runs share one task)."""
    from omegaconf import OmegaConf

    from harness.data.tasks import build_task

    try:
        task = build_task(OmegaConf.create(json.loads(task_json)))
    except Exception:  # a task that cannot be rebuilt here (a jsonl file moved, a generator gone): no examples
        return None
    return {e.id: e for e in task.train + task.test}


def run_dirs(path: Path | str) -> list[RunDir]:
    """The run directories of a sweep dir (those with ``.hydra/config.yaml``), or ``[path]`` for a run dir."""
    path = Path(path)
    found = [RunDir(p.parent.parent) for p in sorted(path.glob("*/.hydra/config.yaml"))]
    if not found and ((path / RUN_JSON).exists() or (path / DELTA).exists()):
        return [RunDir(path)]
    return found


@dataclass
class Sweep:
    """A sweep directory as one table (one row per run) plus the runs themselves.

    ``table`` columns: ``run``, ``status``, ``reason``, ``adapter``, ``objective``, ``seed``, one column per
    swept setting (:attr:`settings`), and ``condition`` (a readable label of the group a run belongs to).
    """

    path: Path
    runs: list[RunDir]
    table: pd.DataFrame
    settings: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # grid cells the study left out (``run_objectives``)

    @property
    def keys(self) -> list[str]:
        """Group keys: runs agree on all of them iff they differ at most in their seed."""
        return [*IDENTITY, *self.settings]

    def run(self, name: str) -> RunDir:
        return self._by_name[name]

    @functools.cached_property
    def _by_name(self) -> dict[str, RunDir]:
        return {r.name: r for r in self.runs}

    def wall_time(self) -> tuple[float, float] | None:
        """(first run's start to last run's end, sum of the runs' own times), in seconds, from ``run.json``;
        None when no run has both timestamps. Parallel jobs make the first smaller than the second."""
        import datetime as dt

        spans, own = [], 0.0
        for r in self.runs:
            rec = r.record or {}
            try:
                spans.append((dt.datetime.fromisoformat(rec["started"]), dt.datetime.fromisoformat(rec["finished"])))
            except (KeyError, TypeError, ValueError):
                continue
            own += float((rec.get("timings") or {}).get("total") or 0.0)
        if not spans:
            return None
        return (max(b for _, b in spans) - min(a for a, _ in spans)).total_seconds(), own

    @property
    def done(self) -> pd.DataFrame:
        return self.table[self.table["status"] == "done"]

    def groups(self, table: pd.DataFrame | None = None, keys: list[str] | None = None
               ) -> Iterator[tuple[dict[str, str], pd.DataFrame]]:
        """(group values, rows) per group of ``table`` (default: the done runs), keys default :attr:`keys`."""
        table = self.done if table is None else table
        keys = self.keys if keys is None else keys
        if table.empty:
            return
        for values, rows in table.groupby(keys, sort=True, dropna=False):
            values = values if isinstance(values, tuple) else (values,)
            yield dict(zip(keys, values)), rows

    def pairs(self, across: str, table: pd.DataFrame | None = None) -> list[tuple[str, str, dict[str, str]]]:
        """Pairs of runs (a, b, shared values) that differ in ``across`` and agree on every other group key.

        ``across="seed"``: the same condition, two seeds. ``across="objective"`` (or any setting): the same
        seed and every other setting equal — never an r=1 SFT run with an r=64 RLVR run.
        """
        table = self.done if table is None else table
        other = [k for k in self.keys if k != across]
        if across != "seed":
            other.append("seed")
        out = []
        rows = table.to_dict("records")
        for i, a in enumerate(rows):
            for b in rows[i + 1:]:
                if str(a[across]) != str(b[across]) and all(str(a[k]) == str(b[k]) for k in other):
                    out.append((a["run"], b["run"], {k: a[k] for k in other}))
        return out

    def condition(self, row: dict | pd.Series) -> str:
        """``lora/rlvr`` plus the swept settings that set this group apart, e.g. ``lora/rlvr [adapter.r=8]``."""
        extra = ",".join(f"{k}={row[k]}" for k in self.settings)
        return f"{row['adapter']}/{row['objective']}" + (f" [{extra}]" if extra else "")


def load_sweep(path: Path | str) -> Sweep:
    """Read a sweep dir (or a single run dir) into a :class:`Sweep`."""
    path = Path(path)
    runs = run_dirs(path)
    skipped = [r.name for r in runs if r.status == SKIPPED]
    runs = [r for r in runs if r.status != SKIPPED]  # not part of the study: neither done nor failed
    keys: dict[str, None] = {}
    for r in runs:
        for k in r.overrides:
            if k != "seed" and k not in IDENTITY and not is_launch_key(k):
                keys[k] = None
    rows = []
    for r in runs:
        row = {"run": r.name, "status": r.status, "reason": r.reason,
               **{k: r.identity(k) for k in IDENTITY}, "seed": r.seed}
        row.update({k: r.setting(k) for k in keys})
        rows.append(row)
    table = pd.DataFrame(rows, columns=["run", "status", "reason", *IDENTITY, "seed", *keys])
    # A swept setting is one that takes more than one value in this sweep.
    settings = [k for k in keys if table[k].astype(str).nunique() > 1]
    table = table.drop(columns=[k for k in keys if k not in settings])
    sweep = Sweep(path, runs, table, settings, skipped)
    table["condition"] = [sweep.condition(r) for r in table.to_dict("records")] if len(table) else []
    return sweep


def per_run(sweep: Sweep) -> pd.DataFrame:
    """The sweep table plus each run's measured values: ``geo:<key>`` (whole-model geometry at the default
    analyzer settings), ``acc_id``/``gain_id`` and ``acc_ood``/``change_ood`` (means over the in-distribution
    and the OOD lm-eval tasks), the ``entk_*`` figures, ``trainable``/``trainable_share`` (the parameters the
    optimizer could change: run.json's ``parameters``), and the surgery (``surg:*``) and trajectory (``traj:*``)
    figures of :mod:`harness.analysis.surgery_values` where the run has them."""
    from harness.analysis.surgery_values import surgery_values, trajectory_values

    rows = []
    for row in sweep.table.to_dict("records"):
        run = sweep.run(row["run"])
        params = (run.record or {}).get("parameters") or {}
        if params.get("total"):
            row["trainable"], row["trainable_share"] = params["trainable"], params["trainable"] / params["total"]
        geo = run.geometry_summary() or {}
        row.update({f"geo:{k}": v for k, v in (geo.get("whole_model") or {}).items()})
        ev = run.eval()
        if ev:
            tasks = ev.get("tasks", {}).values()
            for split, acc, delta in (("id", "acc_id", "gain_id"), ("ood", "acc_ood", "change_ood")):
                chosen = [t for t in tasks if t.get("split") == split]
                row[acc] = _mean([t.get("accuracy") for t in chosen])
                row[delta] = _mean([t.get("delta") for t in chosen])
        row.update(run.entk() or {})
        row.update(surgery_values(run.json("surgery.json")))
        row.update(trajectory_values(run.json("trajectory_summary.json"), run.json("trajectory_eval.json"), ev))
        rows.append(row)
    return pd.DataFrame(rows)


def _mean(xs) -> float:
    v = numeric(xs)
    return float(v.mean()) if v.size else math.nan
