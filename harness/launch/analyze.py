"""Analyze finished runs: ``python -m harness.analyze <run dir | sweep dir> [key=value ...]``, two checkpoints:
``python -m harness.analyze base=<dir | model name | hub id> tuned=<...> [out=<dir>]``, or a study of released
checkpoint pairs: ``python -m harness.analyze pairs=<study.yaml> [out=<dir>]`` (:mod:`harness.analysis.pairs`).

For a run or sweep the geometry is analysed and printed; on a sweep, so are the report sections registered with
``console=True`` (:func:`harness.report.base.section`: accuracy, unlearnability). Options (``key=value``) are listed in
:data:`OPTIONS`; a section reads its own from :data:`CONTEXT` ``["options"]``. A bad option or path prints
one line naming the value and the valid choices, and exits 2.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # as in harness.launch.run: no hub access unless asked for
# OpenMP threads that wait for work sleep instead of spinning. Measured on the 2-core machine shared with other
# jobs: torch's eigh of an 896×896 Gram took 0.6-7 s with spinning threads and 0.22 s with passive ones (an
# idle machine: the same 0.2 s either way). Must be set before torch loads; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from harness.analysis.geometry import sources  # noqa: E402
from harness.analysis.geometry.analyze_run import (  # noqa: E402
    OptionError,
    analyze_pair,
    analyze_run_dir,
    analyze_sweep,
    is_run_dir,
)
from harness.analysis.geometry.metrics import TOPK_METHODS, Settings  # noqa: E402
from harness.launch.cli import ArgumentError, split_options  # noqa: E402
from harness.launch.validate import DEVICE  # noqa: E402

BOOL = {"true": True, "false": False}

# Valid key=value options (sections may add theirs).
OPTIONS: dict[str, str] = {
    "pairs": "a pair-study YAML (base/tuned checkpoint pairs, see harness/conf/pairs/catalog.yaml): every pair "
             "analysed, then the tables, plots and Claims of a sweep, pairs in place of seeds",
    "base": "base checkpoint: a dir, a model name (conf/model) or a hub id; with tuned=",
    "tuned": "tuned checkpoint, compared with base=",
    "out": "output dir of a base/tuned comparison (default $HARNESS_OUT/analyze/<base>--<tuned>) or of a pair "
           "study (default $HARNESS_OUT/pairs/<study name>)",
    "k": "top-k sizes, comma-separated: integers, fractions of min(m, n), or gap<K> (gap-aware near K) (default 16,0.01)",
    "alpha": "principal mask share, in (0, 1) (default 0.2)",
    "topk": f"top-k vectors of W1: {' | '.join(TOPK_METHODS)} (default exact)",
    "matrix": "matrix whose spectrum is plotted (default: the one that drifted most)",
    "embeddings": "also analyze embedding / lm_head updates: true | false",
    "device": "auto | cpu | cuda | cuda:<n> | mps (default cpu): where the decompositions run",
    "workers": "batches of matrices analysed at once on the CPU, each with cores/workers threads (default: "
               "min(2, cores)); memory grows with it",
    "force": "recompute analyses already stored with the same settings: true | false",
}

# Shared with the sections: the parsed options and the geometry settings.
CONTEXT: dict = {"options": {}, "settings": Settings(), "force": False}


def geometry_section(target: Path) -> str | None:
    """Geometry of a run dir or of every run of a sweep dir (+ cross-run table and plots)."""
    settings, force = CONTEXT["settings"], CONTEXT["force"]
    if is_run_dir(target):
        return analyze_run_dir(target, settings, force)
    return analyze_sweep(target, settings, force)


def report_sections(target: Path) -> list[str]:
    """The report sections registered with ``console=True`` (accuracy, unlearnability, ...), on a sweep."""
    from harness.analysis.sweep import load_sweep
    from harness.report.base import Context, ordered

    if is_run_dir(target):
        return []
    ctx = Context(load_sweep(target), target / "report")
    texts = [(s.title, s.render(ctx)) for s in ordered() if s.console]
    return [f"## {title}\n\n{text}" if title else text for title, text in texts if text]


def fail(msg: str) -> None:
    print(msg, file=sys.stderr)
    raise SystemExit(2)


def parse_ks(value: str) -> tuple[int | float | str, ...]:
    out: list[int | float | str] = []
    for item in value.split(","):
        if item.startswith("gap") and (item[3:] == "" or item[3:].isdigit() and int(item[3:]) >= 1):
            out.append(f"gap{item[3:] or 16}")  # gap-aware k (harness.analysis.geometry.metrics.gap_k)
            continue
        try:
            k = float(item)
        except ValueError:
            k = -1.0
        if k >= 1 and k == int(k):
            out.append(int(k))
        elif 0 < k < 1:
            out.append(k)
        else:
            raise OptionError(f"error: bad k {item!r}; valid: integers >= 1, fractions in (0, 1) or gap<K> "
                              "(gap-aware, near K; gap = gap16), comma-separated (e.g. k=16,0.01,gap)")
    return tuple(out)


def choose(key: str, value: str, valid: tuple[str, ...] | list[str]) -> str:
    if value not in valid:
        raise OptionError(f"error: bad {key} {value!r}; valid: {', '.join(valid)}")
    return value


def settings_from(opts: dict[str, str]) -> Settings:
    kw: dict = {}
    if "k" in opts:
        kw["ks"] = parse_ks(opts["k"])
    if "alpha" in opts:
        try:
            kw["alpha"] = float(opts["alpha"])
        except ValueError:
            kw["alpha"] = -1.0
        if not 0 < kw["alpha"] < 1:
            raise OptionError(f"error: bad alpha {opts['alpha']!r}; valid: a number in (0, 1)")
    if "topk" in opts:
        kw["topk"] = choose("topk", opts["topk"], TOPK_METHODS)
    if "device" in opts:
        if not DEVICE.ok(opts["device"]):  # the device rule of a run's model.device: one set of devices
            raise OptionError(f"error: bad device {opts['device']!r}; valid: {DEVICE.valid}")
        kw["device"] = opts["device"]
    if "embeddings" in opts:
        kw["embeddings"] = BOOL[choose("embeddings", opts["embeddings"], tuple(BOOL))]
    if "matrix" in opts:
        kw["matrix"] = opts["matrix"]
    if "workers" in opts:
        if not opts["workers"].isdigit() or int(opts["workers"]) < 1:
            raise OptionError(f"error: bad workers {opts['workers']!r}; valid: an integer >= 1")
        kw["workers"] = int(opts["workers"])
    return Settings(**kw)




def resolve_checkpoint(key: str, ref: str) -> Path:
    """A checkpoint dir from a dir, a model name of conf/model or a hub id (one-line error otherwise)."""
    try:
        return sources.resolve_checkpoint(key, ref)
    except sources.ResolveError as exc:
        raise OptionError(str(exc)) from exc


def parse_argv(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    try:
        return split_options(argv, OPTIONS)
    except ArgumentError as exc:
        raise OptionError(str(exc)) from None


def usage() -> str:
    lines = ["usage: python -m harness.analyze <run dir | sweep dir> [key=value ...]",
             "       python -m harness.analyze base=<dir | model name | hub id> tuned=<...> [out=<dir>]",
             "       python -m harness.analyze pairs=<study.yaml> [out=<dir>] [key=value ...]",
             "options:"]
    return "\n".join(lines + [f"  {k}=  {v}" for k, v in OPTIONS.items()])


def run(argv: list[str]) -> None:
    if any(a in ("-h", "--help") for a in argv):
        print(usage())
        return
    targets, opts = parse_argv(argv)
    CONTEXT["options"] = opts
    CONTEXT["settings"] = settings_from(opts)
    CONTEXT["force"] = BOOL[choose("force", opts.get("force", "false"), tuple(BOOL))]
    if "pairs" in opts:
        if targets or "base" in opts or "tuned" in opts:
            raise OptionError("error: a pair study takes pairs=<file> and no run dir, base= or tuned=; valid: "
                              "python -m harness.analyze pairs=<study.yaml> [out=<dir>]")
        from harness.launch.pairs_study import run_study

        raise SystemExit(run_study(Path(opts["pairs"]), opts.get("out"), CONTEXT["settings"], CONTEXT["force"]))
    if "base" in opts or "tuned" in opts:
        if targets or not opts.get("base") or not opts.get("tuned"):
            raise OptionError("error: a checkpoint comparison needs base=<...> and tuned=<...> and no run dir; "
                              "valid: python -m harness.analyze base=<dir|name|hub id> tuned=<...> [out=<dir>]")
        base, tuned = resolve_checkpoint("base", opts["base"]), resolve_checkpoint("tuned", opts["tuned"])
        out = Path(opts.get("out") or Path(os.environ.get("HARNESS_OUT", "outputs")) / "analyze" /
                   f"{base.name}--{tuned.name}")
        print(analyze_pair(base, tuned, out, CONTEXT["settings"], CONTEXT["force"]), flush=True)
        return
    if len(targets) != 1:
        raise OptionError(f"error: expected one run or sweep dir, got {len(targets)} ({' '.join(targets)}); "
                          "valid: python -m harness.analyze <run dir | sweep dir> [key=value ...]")
    target = Path(targets[0])
    if not target.is_dir():
        raise OptionError(f"error: no such run or sweep dir {str(target)!r}")
    if not is_run_dir(target) and not any(target.glob("*/.hydra/config.yaml")):
        raise OptionError(f"error: {str(target)!r} is neither a run dir (run.json, delta.safetensors) nor a "
                          "sweep dir (subdirs with .hydra/config.yaml)")
    text = geometry_section(target)
    for part in ([text] if text else []) + report_sections(target):
        print(part, flush=True)


def main(argv: list[str] | None = None) -> None:
    try:
        run(sys.argv[1:] if argv is None else argv)
    except OptionError as exc:
        fail(str(exc))


if __name__ == "__main__":
    main()
