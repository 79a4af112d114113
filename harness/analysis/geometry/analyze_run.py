"""The analyzer's drivers: one run dir, a sweep dir (every run + cross-run table + plots), or two checkpoints.

Outputs (all written atomically; a run whose artifacts are missing or corrupt gets a one-line warning and no
files, the others are analyzed):

- per run: ``geometry.csv`` (one row per matrix, columns in :func:`harness.analysis.geometry.metrics.columns`) and
  ``geometry_summary.json`` (whole model, by module type, by layer; parameter-weighted);
- per sweep: ``geometry_runs.csv`` (whole-model row per run), ``cross_run.csv`` and
  ``plots/geometry_{layers,spectrum,energy}.png``; a single run or a checkpoint pair gets the same plots.

A run whose stored summary has the same fingerprint (settings, delta file stamp, base weights hash) is not
recomputed, so analyzing a growing sweep again only analyzes the new runs (``force=true`` recomputes).
"""

from __future__ import annotations

import difflib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from harness.analysis.geometry import plots
from harness.analysis.geometry.aggregate import aggregate, jsonable, summary_header, summary_line
from harness.analysis.geometry.cross import cross_run
from harness.analysis.geometry.metrics import Settings, batch_metrics, columns
from harness.analysis.geometry.sources import Checkpoint, PairDelta, RunDelta, matrix_kind, sort_names
from harness.analysis.geometry.spectra import SpectraCache, batch, by_shape, chunks, gram_decomp, run_batches
from harness.analysis.pairs import pair_of
from harness.analysis.sweep import DELTA, SKIPPED, RunDir, run_dirs
from harness.core.store import atomic_write_text, settings_hash

ANALYZER_VERSION = 3  # bump when a metric's computation changes: stored analyses are then recomputed
# (3: sparsity_bf16 is the bf16-cast criterion, the relative rule is sparsity_rel1e3)


def settings_tag(settings: Settings) -> str:
    """File-name tag of an analysis: '' for the default settings (what the report reads), else '.<hash>', so
    analyses with other settings (``python -m harness.analyze <sweep> k=8``) sit beside it, never over it."""
    fp = settings.fingerprint()
    return "" if fp == Settings().fingerprint() else "." + settings_hash(fp, 8)


class RunError(Exception):
    """A run that cannot be analyzed; the message is the one-line reason."""


class OptionError(ValueError):
    """A bad user option (the CLI prints it as one line and exits 2)."""


@dataclass
class Analysis:
    label: str
    out_dir: Path
    table: pd.DataFrame
    summary: dict
    base: Checkpoint
    delta: RunDelta | PairDelta
    reused: bool = False


def warn(run: str, reason: str) -> None:
    print(f"[harness] warning: run {run}: {reason}; skipped", file=sys.stderr, flush=True)


def resolve_device(device: str) -> str:
    """``auto``: the GPU when there is one, else the CPU (the rule of a run's ``model.device``)."""
    from harness.core.dist import device as rank_device

    return rank_device(device)


def analyzed_names(base: Checkpoint, delta: RunDelta | PairDelta, settings: Settings) -> list[str]:
    """The delta's matrices that the settings analyze; a shape that differs from the base is an error."""
    allowed = set(base.analyzed(settings.embeddings))
    names = [n for n in delta.names if n in allowed]
    for n in names:
        if tuple(delta.shape(n)) != tuple(base.shape(n)):
            raise RunError(f"{n}: ΔW shape {tuple(delta.shape(n))} != base shape {tuple(base.shape(n))} "
                           f"(wrong base checkpoint {base.path}?)")
    if not names:
        raise RunError(f"no analyzable matrices in common with the base {base.path}")
    return sort_names(names)


PROGRESS_DELAY_S = 2.0  # a bar appears only for work that takes longer: a quick analysis prints nothing


def progress_bar(total: int, desc: str) -> tqdm:
    """A bar over matrices with the time left (stderr), shown once the work has taken 2 s."""
    return tqdm(total=total, desc=desc, unit="matrix", file=sys.stderr, mininterval=1.0, dynamic_ncols=True,
                delay=PROGRESS_DELAY_S)


def analyze_delta(base: Checkpoint, delta: RunDelta | PairDelta, settings: Settings, label: str = "ΔW"
                  ) -> pd.DataFrame:
    """The per-matrix table of one ΔW against its base: batched by shape (one batch holds at most a few
    matrices, and ``settings.workers`` batches run at once, so memory does not grow with the model), W0's
    part from the cache; progress bars over the matrices (W0's decompositions when not cached yet, then the
    metrics)."""
    device = resolve_device(settings.device)
    names = analyzed_names(base, delta, settings)
    cache = SpectraCache.of(base, device)
    ks_of = lambda n: settings.k_values(*base.shape(n))  # noqa: E731
    workers = settings.worker_count(device)
    todo = cache.missing(names, ks_of, settings.alpha)
    if todo:
        with progress_bar(len(todo), f"W0 decompositions ({base.path.name}, once per base)") as bar:
            cache.ensure(todo, ks_of, settings.alpha, bar.update, workers)

    def one(job: tuple[tuple[int, ...], list[str]]) -> list[dict]:
        shape, chunk = job
        ks = settings.k_values(*shape)
        held = cache.entries(chunk)
        w0 = batch([base.get(n) for n in chunk]).to(device, torch.float32)
        d = batch([delta.get(n) for n in chunk]).to(device, torch.float32)
        res = batch_metrics(w0, d, cache.decomp(chunk, max(ks), held),
                            [cache.thresholds(chunk, k, settings.alpha, held) for k in ks], settings)
        del w0, d, held
        out = []
        for i, name in enumerate(chunk):
            layer, module = matrix_kind(name)
            out.append({"name": name, "layer": layer, "module": module, "m": shape[0], "n": shape[1],
                        "params": shape[0] * shape[1], **{k: float(v[i]) for k, v in res.items()}})
        return out

    jobs = [(shape, chunk) for shape, group in by_shape(names, base.shape).items() for chunk in chunks(group, shape)]
    rows = []
    with progress_bar(len(names), f"geometry {label}") as bar:
        for out in run_batches(one, jobs, workers):
            rows += out
            bar.update(len(out))
    order = {n: i for i, n in enumerate(names)}
    rows.sort(key=lambda r: order[r["name"]])
    return pd.DataFrame(rows, columns=columns(settings))


def _write_table(df: pd.DataFrame, path: Path) -> None:
    atomic_write_text(path, df.to_csv(index=False))


def analyze_one(label: str, out_dir: Path, base: Checkpoint, delta: RunDelta | PairDelta, settings: Settings,
                info: dict, force: bool = False) -> Analysis:
    """Analyze one ΔW into ``out_dir`` (or reuse a stored analysis with the same fingerprint)."""
    fingerprint = {"analyzer": ANALYZER_VERSION, "settings": settings.fingerprint(), "delta": delta.stamp(),
                   "base": base.weights_hash()}
    tag = settings_tag(settings)
    csv_path, json_path = out_dir / f"geometry{tag}.csv", out_dir / f"geometry_summary{tag}.json"
    if not force and csv_path.exists() and json_path.exists():
        try:
            summary = json.loads(json_path.read_text())
            if summary.get("fingerprint") == fingerprint:
                return Analysis(label, out_dir, pd.read_csv(csv_path), summary, base, delta, reused=True)
        except (OSError, ValueError):
            pass  # unreadable: recompute
    t0 = time.perf_counter()
    table = analyze_delta(base, delta, settings, label)
    summary = {"label": label, **info, "base_dir": str(base.path), "fingerprint": fingerprint,
               "settings": settings.fingerprint(),
               "analyze_s": round(time.perf_counter() - t0, 3), **aggregate(table)}
    summary = jsonable(summary)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_table(table, csv_path)
    atomic_write_text(json_path, json.dumps(summary, indent=1))
    return Analysis(label, out_dir, table, summary, base, delta)


def load_pair(pair: dict) -> tuple[Checkpoint, PairDelta]:
    """Base checkpoint and ΔW of a checkpoint pair (the resolved dirs a pair study wrote into ``run.json``)."""
    try:
        base = Checkpoint(pair["base_dir"])
        return base, PairDelta(base, Checkpoint(pair["tuned_dir"]))
    except (KeyError, TypeError, OSError) as exc:
        raise RunError(f"checkpoint pair unreadable ({type(exc).__name__}: {exc})") from exc


def load_job(run: RunDir) -> tuple[Checkpoint, RunDelta | PairDelta]:
    """Base checkpoint and delta of a run (or of a pair study's pair); :class:`RunError` with the reason if
    unusable."""
    rec = run.record
    if rec is None:
        raise RunError("run.json missing or unreadable")
    if run.status != "done":
        raise RunError(f"status {run.status!r}" + (f" ({run.reason})" if run.reason else ""))
    if pair_of(run) is not None:
        return load_pair(pair_of(run))
    if not run.file(DELTA).exists():
        raise RunError(f"no {DELTA}")
    try:
        delta = run.delta()
    except Exception as exc:  # safetensors raises its own error types for a corrupt header
        raise RunError(f"{DELTA} unreadable ({type(exc).__name__}: {exc})") from exc
    base_dir = run.base_dir or delta.metadata.get("base_dir")
    if not base_dir or not Path(base_dir).is_dir():
        raise RunError(f"base checkpoint {base_dir!r} not found")
    return Checkpoint(base_dir), delta


def run_label(run: RunDir) -> str:
    if pair_of(run) is not None:
        return run.name
    if run.record and run.record.get("adapter") and run.record.get("objective"):
        return f"{run.identity('adapter')}/{run.identity('objective')}/s{run.seed}"
    return run.name


def analyze_job(run: RunDir | Path, settings: Settings, force: bool = False) -> Analysis:
    run = run if isinstance(run, RunDir) else RunDir(run)
    base, delta = load_job(run)
    info = {"adapter": run.identity("adapter"), "objective": run.identity("objective"), "seed": run.seed,
            "task": run.identity("task"), "model": run.identity("model"), "run": run.name}
    try:
        return analyze_one(run_label(run), run.path, base, delta, settings, info, force)
    except RunError:
        raise
    except Exception as exc:  # e.g. a truncated tensor in the delta: the run is skipped, not the sweep
        raise RunError(f"{type(exc).__name__}: {exc}") from exc


def write_plots(results: list[Analysis], out_dir: Path, settings: Settings) -> list[Path]:
    """Layers, spectrum and energy plots of some analyses (which share a base) into ``out_dir/plots``."""
    k = settings.labels()[0]
    tables = {a.label: a.table for a in results}
    pdir = out_dir / f"plots{settings_tag(settings)}"
    files = [plots.plot_layers(tables, k, pdir / "geometry_layers.png"),
             plots.plot_energy(tables, k, pdir / "geometry_energy.png")]
    first = results[0]
    same_base = [a for a in results if a.base.weights_hash() == first.base.weights_hash()]
    names = list(first.table["name"])
    name = settings.matrix
    if name is None:  # the matrix that drifted most, on average over runs
        drift = pd.concat([a.table[["name", "drift"]] for a in same_base]).groupby("name")["drift"].mean()
        name = str(drift.idxmax())
    elif name not in names:
        hint = difflib.get_close_matches(name, names, n=1)
        near = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise OptionError(f"error: unknown matrix {name!r}{near}; valid: the names in geometry.csv, e.g. "
                          f"{names[0]!r}")
    device = resolve_device(settings.device)
    w0 = first.base.get(name).to(device, torch.float32)
    s0 = gram_decomp(w0.double()[None]).S[0].cpu().numpy()
    s1 = {a.label: gram_decomp((w0 + a.delta.get(name).to(device)).double()[None]).S[0].cpu().numpy()
          for a in same_base if name in set(a.table["name"])}
    files.append(plots.plot_spectrum(s0, s1, name, pdir / "geometry_spectrum.png"))
    return files


def unique_labels(results: list[Analysis]) -> None:
    """Labels name runs in tables and legends; fall back to the run dir name where two coincide."""
    seen = [a.label for a in results]
    for a in results:
        if seen.count(a.label) > 1:
            a.label = a.out_dir.name


def report(results: list[Analysis], settings: Settings, title: str) -> str:
    lines = [f"geometry: {title}", "  whole model, parameter-weighted; angle = largest principal angle of the "
             "top-k singular subspaces (mean | max over matrices); energy = share of ΔW in W0's top-k "
             "subspace, beside its random baseline", "  " + summary_header(settings)]
    lines += ["  " + summary_line(a.label, a.summary["whole_model"], settings) for a in results]
    return "\n".join(lines)


def analyze_sweep(sweep_dir: Path, settings: Settings, force: bool = False) -> str:
    """Analyze every run of a sweep, then the cross-run table and the plots; returns the printed summary."""
    jobs = [r for r in run_dirs(sweep_dir) if r.status != SKIPPED]  # cells the study left out on purpose
    results: list[Analysis] = []
    for run in jobs:
        try:
            results.append(analyze_job(run, settings, force))
        except RunError as exc:
            warn(run.name, str(exc))
    skipped = len(jobs) - len(results)
    title = f"{sweep_dir} ({len(results)} runs analyzed" + (f", {skipped} skipped)" if skipped else ")")
    if not results:
        return title
    unique_labels(results)
    runs = pd.DataFrame([{"label": a.label, "run": a.out_dir.name,
                          **{k: a.summary.get(k) for k in ("adapter", "objective", "seed")},
                          **a.summary["whole_model"]} for a in results])
    tag = settings_tag(settings)
    _write_table(runs, sweep_dir / f"geometry_runs{tag}.csv")
    text = [report(results, settings, title)]
    cross = cross_tables(results)
    if cross is not None:
        _write_table(cross, sweep_dir / f"cross_run{tag}.csv")
        text.append(cross_text(cross))
    write_plots(results, sweep_dir, settings)
    text.append(f"  files: geometry{tag}.csv + geometry_summary{tag}.json per run; {sweep_dir}/"
                f"geometry_runs{tag}.csv, cross_run{tag}.csv, plots{tag}/geometry_*.png")
    return "\n".join(text)


def cross_tables(results: list[Analysis]) -> pd.DataFrame | None:
    """Cross-run table over the pairs of runs that share a base (runs from other bases are not compared)."""
    groups: dict[str, list[Analysis]] = {}
    for a in results:
        groups.setdefault(a.base.weights_hash(), []).append(a)
    tables = []
    for group in groups.values():
        if len(group) < 2:
            continue
        common = set.intersection(*(set(a.table["name"]) for a in group))
        names = [n for n in group[0].table["name"] if n in common]
        tables.append(cross_run([a.label for a in group], [a.delta for a in group], group[0].base, names))
    return pd.concat(tables, ignore_index=True) if tables else None


def cross_text(cross: pd.DataFrame, limit: int = 12) -> str:
    whole = cross[cross["scope"] == "all"]
    lines = ["  cross-run (whole model): cosine of ΔW [random] / Jaccard of bf16 update masks [random]"]
    for _, r in whole.head(limit).iterrows():
        lines.append(f"    {r.run_a} vs {r.run_b}: cosine {r.cosine:.4f} [{r.cosine_base:.1e}]  "
                     f"jaccard {r.jaccard:.4f} [{r.jaccard_base:.4f}]")
    if len(whole) > limit:
        lines.append(f"    ... {len(whole) - limit} more pairs in cross_run.csv")
    return "\n".join(lines)


def analyze_run_dir(job_dir: Path, settings: Settings, force: bool = False) -> str:
    """One run: its tables and plots (in the run dir)."""
    try:
        a = analyze_job(job_dir, settings, force)
    except RunError as exc:
        warn(job_dir.name, str(exc))
        return f"geometry: {job_dir} (0 runs analyzed, 1 skipped)"
    write_plots([a], job_dir, settings)
    tag = settings_tag(settings)
    return report([a], settings, str(job_dir)) + (f"\n  files: {job_dir}/geometry{tag}.csv, "
                                                   f"geometry_summary{tag}.json, plots{tag}/")


def analyze_pair(base_dir: Path, tuned_dir: Path, out_dir: Path, settings: Settings, force: bool = False) -> str:
    """Two checkpoints (e.g. a public base and its RL-tuned release): ΔW = W_tuned − W_base."""
    base, tuned = Checkpoint(base_dir), Checkpoint(tuned_dir)
    delta = PairDelta(base, tuned)
    info = {"base": str(base_dir), "tuned": str(tuned_dir)}
    try:
        a = analyze_one(tuned_dir.name, out_dir, base, delta, settings, info, force)
    except RunError as exc:
        raise OptionError(f"error: cannot compare {tuned_dir} with {base_dir}: {exc}") from exc
    write_plots([a], out_dir, settings)
    return report([a], settings, f"{tuned_dir} vs base {base_dir}") + f"\n  files: {out_dir}/"


def is_run_dir(path: Path) -> bool:
    return (path / "run.json").exists() or (path / DELTA).exists()
