"""ΔW surgery: which part of a run's update carries its gain? Evaluate W0 + T(ΔW) for a set of edits T.

Per run, after ``eval`` (same tasks: the held-out split and the OOD tasks, :mod:`harness.measure.evaluate`): for
each entry of ``surgery.edits`` (an edit of :mod:`harness.measure.edits` and its parameters), every analyzed
matrix of a copy of the base gets W0 + T(ΔW), ΔW read from the run's ``delta.safetensors`` (exact for
LoRA-family adapters: the factors' product, not a merged difference; docs/usage.md), and the model is
evaluated; with ``surgery.random``, so is the edit's null, W0 + R with R Gaussian of the same Frobenius norm
as T(ΔW) matrix by matrix. Per edit and task (``surgery.json``):

- ``accuracy`` and the fraction of the run's change it keeps, ``kept = (acc_edit − acc_base)/(acc_run −
  acc_base)``: null, with ``kept_reason``, when the run's change (paired bootstrap over prompts, run − base)
  has a 95 % interval that includes 0 (no gain to keep a fraction of);
- ``vs_run`` / ``vs_base``: the paired bootstrap over prompts of acc_edit − acc_run and acc_edit − acc_base
  (estimate, 95 % interval, p);
- ``norm_ratio`` ‖T(ΔW)‖_F/‖ΔW‖_F over all matrices, ``seconds`` (building the weights, evaluating).

The base's and the run's results are those of ``eval`` (the base cached once per base; the run's from this
run's ``eval.json``, or evaluated here when eval is off). Intervals over seeds are the report's (it pairs runs).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from harness.measure.base import measurement, write_artifact
from harness.measure.evaluate import (
    base_results,
    compare,
    eval_root,
    evaluate_model,
    load_tasks,
    prepare_tasks,
)

DEFINITION = ("kept = (acc(W0 + T(dW)) - acc_base) / (acc_run - acc_base) per task, null when the run's change "
              "run - base has a paired-bootstrap 95 % interval that includes 0; vs_run / vs_base: paired bootstrap "
              "over prompts of acc_edit - acc_run / acc_edit - acc_base; random: W0 + R, R Gaussian with the "
              "Frobenius norm of T(dW) per matrix; norm_ratio = ||T(dW)||_F / ||dW||_F over all matrices")


def settings(cfg) -> dict:
    """The ``surgery`` block; ``edits``: the entries not set to null, only those ``only`` names when given."""
    from harness.core.config import block

    s = block(cfg, "surgery")
    only = s.get("only")
    s["edits"] = {k: v for k, v in (s.get("edits") or {}).items() if v is not None and (only is None or k in only)}
    return s


def run_results(cfg, job_dir: Path, merged, tok, tasks: dict) -> dict[str, dict]:
    """The run's per-task results: from this run's ``eval.json`` when it holds every task and was written
    after ``delta.safetensors`` (by this run), else evaluated here on the merged model."""
    from harness.core.store import read_json

    ej, dj = job_dir / "eval.json", job_dir / "delta.safetensors"
    if ej.exists() and ej.stat().st_mtime >= dj.stat().st_mtime:
        done = read_json(ej).get("tasks", {})
        if all(name in done and done[name].get("scores") is not None for name in tasks):
            return {name: done[name] for name in tasks}
    merged.eval()
    results, _ = evaluate_model(merged, tok, tasks, cfg.eval.batch_size, cfg.eval.get("limit"))
    return results


def gains(meta: dict, base_res: dict, run_res: dict) -> dict[str, dict]:
    """Per task: base and run accuracy, the run's change and its paired interval, and whether it is told
    apart from 0 (a fraction of it is defined only then)."""
    from harness.core.stats import distinguishable

    out = {}
    for name, run in run_res.items():
        base = base_res.get(name, {})
        paired = compare(run.get("scores") or {}, base.get("scores") or {})
        ci = paired.get("delta_ci")
        acc, base_acc = run.get("accuracy"), base.get("accuracy")
        out[name] = {"split": meta.get(name, ("lm_eval",))[0], "n": run.get("n"), "base_accuracy": base_acc,
                     "run_accuracy": acc, "change": None if acc is None or base_acc is None else acc - base_acc,
                     "change_ci": ci, "change_distinguishable": bool(ci) and distinguishable(*ci)}
    return out


def kept_fraction(acc: float | None, gain: dict) -> tuple[float | None, str | None]:
    """(acc − acc_base)/(acc_run − acc_base), or (None, why) when the run's change is not told apart from 0."""
    if acc is None or gain["change"] is None:
        return None, "no accuracy"
    if not gain["change_distinguishable"]:
        return None, (f"the run's change {gain['change']:+.3f} has a 95 % interval {gain['change_ci']} that "
                      "includes 0: no change to keep a fraction of")
    return (acc - gain["base_accuracy"]) / gain["change"], None


def task_rows(results: dict, base_res: dict, run_res: dict, gain: dict) -> dict[str, dict]:
    """Per task: accuracy, the fraction kept, the paired differences to the run and to the base, the scores."""
    rows = {}
    for name, res in results.items():
        kept, why = kept_fraction(res.get("accuracy"), gain[name])
        vs = {}
        for other, ref in (("vs_run", run_res[name]), ("vs_base", base_res.get(name, {}))):
            p = compare(res["scores"], ref.get("scores") or {})
            ref_acc = ref.get("accuracy")
            vs[other] = {"diff": None if res.get("accuracy") is None or ref_acc is None else res["accuracy"] - ref_acc,
                         "ci": p.get("delta_ci"), "p": p.get("delta_p")}
        rows[name] = {"accuracy": res.get("accuracy"), "ci": res.get("ci"), "kept": kept, "kept_reason": why, **vs,
                      "scores": res["scores"]}
    return rows


class Surgeon:
    """A copy of the base whose analyzed matrices are rewritten to W0 + T(ΔW) per edit (W0 kept aside)."""

    def __init__(self, model, delta: dict[str, Any]):
        from harness.measure.edits import depth_of, site

        self.model = model
        self.state = model.state_dict()
        self.delta = delta
        self.w0 = {k: self.state[k].detach().clone() for k in delta}
        depth = depth_of(list(delta))
        self.sites = {k: site(k, depth) for k in delta}  # their memos hold W0's decompositions across edits
        self.delta_norm = math.sqrt(sum(float(v.double().pow(2).sum()) for v in delta.values()))

    def _write(self, name: str, update) -> float:
        """W0 + update into the model's matrix ``name`` (summed in float64, cast to the model's dtype); ‖update‖²."""
        w = self.state[name]
        w.copy_((self.w0[name].double() + update.to(w.device)).to(w.dtype))
        return float(update.pow(2).sum())

    def edit(self, spec: dict) -> dict[str, float]:
        """Write W0 + T(ΔW) for the entry ``spec``; returns each matrix's ‖T(ΔW)‖_F."""
        import torch

        from harness.measure.edits import apply

        norms = {}
        with torch.no_grad():
            for name, d in self.delta.items():
                w0 = self.w0[name]
                t = apply(spec, d.to(w0.device, torch.float64), w0.double(), self.sites[name])
                norms[name] = math.sqrt(self._write(name, t))
        return norms

    def random(self, norms: dict[str, float], seed: int, tag: str) -> None:
        """Write W0 + R, R Gaussian with ``norms[name]`` per matrix (the null of the edit named ``tag``:
        :func:`harness.measure.edits.null.random_like` of its T(ΔW))."""
        import torch

        from harness.measure.edits.null import gaussian

        with torch.no_grad():
            for name, d in self.delta.items():
                self._write(name, gaussian(d.shape, norms[name], seed, f"{tag}:{name}"))

    def ratio(self, norms: dict[str, float]) -> float:
        """‖T(ΔW)‖_F/‖ΔW‖_F over all matrices (NaN when ΔW = 0)."""
        total = math.sqrt(sum(n * n for n in norms.values()))
        return total / self.delta_norm if self.delta_norm > 0 else math.nan


def read_delta(job_dir: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The run's ΔW per matrix and the file's metadata (``delta_method``, ...)."""
    from safetensors import safe_open

    with safe_open(str(job_dir / "delta.safetensors"), "pt") as fh:
        return {k: fh.get_tensor(k) for k in fh.keys()}, dict(fh.metadata() or {})


@measurement("surgery", "surgery.json", order=15)
def surgery_for_run(cfg, job_dir: Path, merged, tok, task, base) -> dict:
    """After eval: each configured edit of ΔW (and its norm-matched random null) evaluated on eval's tasks;
    writes ``surgery.json``."""
    from harness.data.models import load_base
    from harness.data.sampling import engine, remember

    job_dir = Path(job_dir)
    s = settings(cfg)
    t_start = time.time()
    task_dir, meta = prepare_tasks(cfg, task, eval_root(job_dir))
    tasks = load_tasks(task_dir, list(meta), [str(n) for n in (cfg.eval.get("tasks") or [])])
    if not tasks:
        print("[harness] surgery: no tasks (see eval.*)", flush=True)
        return {}
    base_res, _ = base_results(cfg, base, tasks)
    run_res = run_results(cfg, job_dir, merged, tok, tasks)
    gain = gains(meta, base_res, run_res)
    delta, info = read_delta(job_dir)
    model, btok = load_base(cfg.model, base, str(next(merged.parameters()).device))
    model.eval()
    remember(model, None)  # its weights will not be the base checkpoint's
    surgeon = Surgeon(model, delta)
    setup = time.time() - t_start

    def evaluate() -> tuple[dict, float]:
        t0 = time.time()
        with engine("hf"):  # in memory: a vLLM engine would load a checkpoint, and the edits are not on disk
            results, _ = evaluate_model(model, btok, tasks, cfg.eval.batch_size, cfg.eval.get("limit"))
        return task_rows(results, base_res, run_res, gain), time.time() - t0

    edits: dict[str, dict] = {}
    for name, spec in s["edits"].items():
        t0 = time.time()
        norms = surgeon.edit(spec)
        build = time.time() - t0
        rows, t_eval = evaluate()
        entry = {"edit": spec["edit"], "params": spec.get("params") or {}, "norm_ratio": surgeon.ratio(norms),
                 "tasks": rows, "seconds": {"build": round(build, 3), "eval": round(t_eval, 3)}}
        if s["random"]:
            t0 = time.time()
            surgeon.random(norms, int(s["seed"]), name)
            build = time.time() - t0
            rows, t_eval = evaluate()
            entry["random"] = {"norm_ratio": surgeon.ratio(norms), "tasks": rows,
                               "seconds": {"build": round(build, 3), "eval": round(t_eval, 3)}}
        edits[name] = entry
        print(f"[harness] surgery {name}: {_line(entry)}", flush=True)
    out = {"definition": DEFINITION, "settings": {"random": s["random"], "seed": s["seed"]},
           "delta_method": info.get("delta_method"), "delta_dtype": str(next(iter(delta.values())).dtype)
           if delta else None, "tasks": gain, "edits": edits,
           "seconds": {"setup": round(setup, 2), "total": round(time.time() - t_start, 2),
                       "per_edit": round((time.time() - t_start - setup) / max(1, len(edits)), 2)}}
    summary = {f"surgery/{e}/{t}/kept": row["kept"] for e, v in edits.items() for t, row in v["tasks"].items()
               if row["kept"] is not None}
    return write_artifact(job_dir, "surgery.json", out, summary)


def _line(entry: dict) -> str:
    """One progress line: accuracy (and the fraction kept) per task, the null's accuracy, the seconds."""
    parts = []
    for t, row in entry["tasks"].items():
        kept = f", kept {row['kept']:.2f}" if row["kept"] is not None else ""
        rnd = entry.get("random", {}).get("tasks", {}).get(t, {}).get("accuracy")
        null = f", random {rnd:.3f}" if rnd is not None else ""
        acc = row["accuracy"]
        parts.append(f"{t}={acc:.3f}{kept}{null}" if acc is not None else f"{t}=n/a")
    secs = sum(entry["seconds"].values()) + sum(entry.get("random", {}).get("seconds", {}).values())
    return f"{' '.join(parts)} (norm {entry['norm_ratio']:.3f}, {secs:.1f}s)"
