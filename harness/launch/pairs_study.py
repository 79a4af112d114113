"""``python -m harness.analyze pairs=<study.yaml>``: analyse every checkpoint pair of a study file, then write
the same tables, plots and Claims section as a sweep, with pairs in place of seeds.

Each pair becomes a run-like directory ``<out>/<pair name>/`` in the run artifact contract the readers know:
``.hydra/config.yaml`` (adapter, objective, the pair's fields), ``.hydra/overrides.yaml`` (``group=<key>``,
the one setting that groups pairs), ``run.json`` (status, reason, ``base_dir`` and a ``pair`` entry naming
both resolved checkpoint dirs and their storage dtypes) and the analyzer's ``geometry.csv`` /
``geometry_summary.json``. :func:`harness.analysis.geometry.analyze_run.load_job` reads a pair's ΔW from the two
checkpoints, so :func:`~harness.analysis.geometry.analyze_run.analyze_sweep` (cross-pair table, plots), the report and
the claims work on the study directory unchanged. Analyses are cached like runs' (a pair whose stored
analysis has the same fingerprint is not recomputed: a killed study resumes), W0's decompositions are cached
once per base (every pair of that base shares them), and a pair that fails is marked ``failed`` with its
reason while the others go on. Offline (the default), a hub id must already be in the local hub cache; if one
is not, the study is refused before anything is analysed with one line naming what to set.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
import traceback
from pathlib import Path

import yaml

from harness.analysis.geometry import sources
from harness.analysis.geometry.analyze_run import (
    Analysis,
    OptionError,
    analyze_one,
    analyze_sweep,
    analyzed_names,
)
from harness.analysis.geometry.metrics import Settings
from harness.analysis.geometry.sources import Checkpoint, PairDelta
from harness.analysis.pairs import GROUP_KEY, PAIR_KEY
from harness.analysis.pairs.spec import PairSpec, Study, load_study
from harness.analysis.sweep import RUN_JSON
from harness.core.store import atomic_write_json, atomic_write_text, read_json

RESERVED = ("report", "plots")  # names of the study dir's own outputs


def now() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")


def preflight(study: Study) -> None:
    """Refuse the study before anything loads when a reference cannot be resolved: an unknown dir or name,
    a revision on a local dir, or (offline) hub ids missing from the local hub cache (one line, exit 2)."""
    missing: list[str] = []
    for p in study.pairs:
        if p.name in RESERVED:
            raise OptionError(f"error: {study.path}: bad pair name {p.name!r}; valid: any name but "
                              f"{', '.join(RESERVED)}")
        for key, ref, rev in (("base", p.base, p.base_revision), ("tuned", p.tuned, p.tuned_revision)):
            try:
                sources.resolve_checkpoint(key, ref, rev, relative_to=study.path.parent, download=False)
            except sources.ResolveError as exc:
                hub = sources.HUB_ID.match(ref) and not Path(ref).exists()
                if not hub:
                    raise OptionError(f"{exc} (pair {p.name!r} of {study.path})") from exc
                if sources.hub_offline():
                    missing.append(ref + (f"@{rev}" if rev else ""))
    if missing:
        shown = ", ".join(dict.fromkeys(missing[:3])) + (", ..." if len(set(missing)) > 3 else "")
        raise OptionError(f"error: pairs={study.path}: {len(set(missing))} hub checkpoint(s) not in the local hub "
                          f"cache ({shown}); offline by default: set HF_HUB_OFFLINE=0 to download")


def pair_config(study: Study, spec: PairSpec) -> dict:
    """The pair's ``.hydra/config.yaml``: what the readers select on (adapter, objective, task = dataset,
    model = group) plus every field of the pair."""
    return {"name": study.name, "seed": spec.index, "group": spec.group,
            "model": {"name": spec.group, "name_or_path": spec.base, "dtype": spec.dtype},
            "adapter": {"name": spec.adapter}, "objective": {"name": spec.objective, "algorithm": spec.algorithm},
            "task": {"name": spec.dataset or "–"}, PAIR_KEY: spec.to_dict()}


def write_record(pdir: Path, spec: PairSpec, status: str, pair: dict, reason: str | None = None,
                 **extra) -> None:
    rec = read_json(pdir / RUN_JSON) or {}
    rec.update({"status": status, "reason": reason, "seed": spec.index, "adapter": spec.adapter,
                "objective": spec.objective, "base_dir": pair.get("base_dir"), PAIR_KEY: pair, **extra})
    atomic_write_json(pdir / RUN_JSON, rec)


def analyze_spec(study: Study, spec: PairSpec, pdir: Path, settings: Settings, force: bool) -> Analysis:
    """Resolve (downloading when online), analyse and record one pair; raises on failure."""
    (pdir / ".hydra").mkdir(parents=True, exist_ok=True)
    atomic_write_text(pdir / ".hydra" / "config.yaml", yaml.safe_dump(pair_config(study, spec), sort_keys=False))
    atomic_write_text(pdir / ".hydra" / "overrides.yaml", yaml.safe_dump([f"{GROUP_KEY}={spec.group}"]))
    pair = spec.to_dict()
    write_record(pdir, spec, "running", pair, started=now())
    t0 = time.perf_counter()
    where = {"relative_to": study.path.parent}
    base = Checkpoint(sources.resolve_checkpoint("base", spec.base, spec.base_revision, **where))
    tuned = Checkpoint(sources.resolve_checkpoint("tuned", spec.tuned, spec.tuned_revision, **where))
    delta = PairDelta(base, tuned)
    names = analyzed_names(base, delta, settings)
    pair.update(base_dir=str(base.path), tuned_dir=str(tuned.path), base_dtype=base.storage_dtype(names),
                tuned_dtype=tuned.storage_dtype(names))
    if spec.dtype and spec.dtype != pair["tuned_dtype"]:
        print(f"[harness] warning: pair {spec.name}: the file says dtype {spec.dtype}, the checkpoint stores "
              f"{pair['tuned_dtype']} (recorded as stored)", file=sys.stderr, flush=True)
    write_record(pdir, spec, "running", pair)
    info = {"adapter": spec.adapter, "objective": spec.objective, "seed": spec.index, "run": spec.name,
            "group": spec.group, "base_dtype": pair["base_dtype"], "tuned_dtype": pair["tuned_dtype"]}
    analysis = analyze_one(spec.name, pdir, base, delta, settings, info, force)
    write_record(pdir, spec, "done", pair, finished=now(),
                 timings={"total": round(time.perf_counter() - t0, 3),
                          "analyze": analysis.summary.get("analyze_s"), "reused": analysis.reused})
    return analysis


def run_study(path: Path, out: str | None, settings: Settings, force: bool = False) -> int:
    """Analyse every pair of the study file, then the cross-pair table, plots, report and Claims; 0 when every
    pair was analysed, 1 otherwise (after writing everything the others allow)."""
    study = load_study(path)
    preflight(study)
    out_dir = Path(out or Path(os.environ.get("HARNESS_OUT", "outputs")) / "pairs" / study.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "pairs.yaml", study.path.read_text())  # the study as it was run
    failed: list[tuple[str, str]] = []
    for i, spec in enumerate(study.pairs):
        print(f"[harness] pair {i + 1}/{len(study.pairs)} {spec.name}: {spec.tuned} vs base {spec.base} "
              f"({spec.objective})", file=sys.stderr, flush=True)
        pdir = out_dir / spec.name
        try:
            analyze_spec(study, spec, pdir, settings, force)
        except Exception as exc:  # one failed pair does not stop the others
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            reason = reason.removeprefix("error: ")
            write_record(pdir, spec, "failed", (read_json(pdir / RUN_JSON) or {}).get(PAIR_KEY) or spec.to_dict(),
                         reason=f"{type(exc).__name__}: {reason}", finished=now(),
                         traceback=traceback.format_exc(limit=5))
            print(f"[harness] warning: pair {spec.name} failed: {reason}; the others go on", file=sys.stderr,
                  flush=True)
            failed.append((spec.name, reason))
    print(analyze_sweep(out_dir, settings), flush=True)
    if settings.fingerprint() == Settings().fingerprint():
        from harness.report import build_report

        report = build_report(out_dir, wandb_log=False, analyze=False)
        claims = read_csv_rows(out_dir / "report" / "claims.csv")
        for r in claims:
            print(f"{r.get('group', '') + ' ' if r.get('group') else ''}{r['id']:<7} {r['verdict']:<27} "
                  f"{r['estimate [95% CI]']}")
        print(f"[harness] pair study report: {report}", flush=True)
    else:
        print("[harness] report and claims read the default analyzer settings: run the study again without "
              "k=/alpha=/topk=/embeddings= to write them", flush=True)
    if failed:
        print(f"[harness] {len(failed)} of {len(study.pairs)} pairs failed: "
              + "; ".join(f"{n} ({r})" for n, r in failed), file=sys.stderr, flush=True)
        return 1
    return 0


def read_csv_rows(path: Path) -> list[dict]:
    import csv

    try:
        with open(path, newline="") as fh:
            return list(csv.DictReader(fh))
    except OSError:
        return []
