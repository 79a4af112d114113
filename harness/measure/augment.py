"""U5 (*The Unlearnability Phenomenon in RLVR*, §5): does augmenting a prompt raise its gradient similarity to the
rest of the training prompts? -> ``augment.csv`` (one row per prompt and augmentation kind) and ``augment.json``.

Augmentations come from the task kind (:meth:`harness.data.tasks.TaskKind.augmentations`: for reasoning-gym
tasks a rephrasing by the generator itself and the problem's self-contained subproblems); no network call.

Per prompt p, the gradient at the base weights of the mean token log-likelihood of the gold answer (count
sketch, :mod:`harness.measure.gradsim`) is taken for p (o_p) and for each augmentation j of p (a_pj). Then

    sim_orig(p) = mean_{q != p} cos(o_p, o_q)
    sim_aug(p, kind) = mean over p's augmentations j of that kind of mean_{q != p} cos(a_pj, o_q)
    delta = sim_aug − sim_orig

the rest being the original prompts. The gold answer, not sampled rollouts, is differentiated on both sides: an
augmented prompt has no training rollouts, and the same kind of completion on both sides keeps the difference
about the prompt (for an answer-only task a correct rollout *is* the answer, and GRPO's gradient of a prompt is
this one up to a positive factor). The classes are the run's own (``prompts.csv``), so it runs after ``passrate``.

``python -m harness.measure.augment <run or sweep dir>`` measures runs already trained (their base, task and
``prompts.csv``).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from harness.core.config import block
from harness.core.store import atomic_path
from harness.measure.base import measurement, write_artifact
from harness.measure.classify import LEARNABLE, NEVER, UNLEARNABLE

COLUMNS = ["prompt_id", "class", "kind", "n_aug", "sim_orig", "sim_aug", "delta"]
FIRST = (UNLEARNABLE, LEARNABLE, NEVER)  # sketched before the easy prompts when max_prompts cuts


def chosen(rows: list[dict], max_prompts: int) -> list[dict]:
    """The training rows sketched: the hard classes first (U5 is about unlearnable prompts), then the rest, in
    file order, at most ``max_prompts`` (at least two: a similarity to the rest needs a rest)."""
    rank = {c: i for i, c in enumerate(FIRST)}
    train = [r for r in rows if r.get("split") == "train"]
    return sorted(train, key=lambda r: rank.get(r["class"], len(FIRST)))[: max(2, max_prompts)]


def similarities(orig: np.ndarray, aug: list[tuple[int, str, np.ndarray]]) -> tuple[np.ndarray, dict]:
    """(sim_orig per original row, {(row, kind): [sim to the rest of each augmentation]}) from the sketches of the
    originals (n x d) and the augmentations as (row of its original, kind, sketch)."""
    from harness.measure.gradsim import cosine_matrix, similarity_to_rest

    n = len(orig)
    sim_orig = similarity_to_rest(orig)
    out: dict[tuple[int, str], list[float]] = {}
    if aug:
        c = cosine_matrix(np.vstack([orig, np.stack([a for _, _, a in aug])]))[n:, :n]
        for k, (p, kind, _) in enumerate(aug):
            rest = np.delete(c[k], p)
            out.setdefault((p, kind), []).append(float(rest.mean()) if len(rest) else float("nan"))
    return sim_orig, out


def augment_run(cfg: DictConfig, job_dir: Path, task, base: Path | str) -> dict:
    """Measure one run (see the module doc); returns what ``augment.json`` holds."""
    from harness.data.tasks import KINDS
    from harness.measure.gradsim import CountSketch, gradient_params, loglik_gradient_sketch

    a = block(cfg, "augment")
    job_dir = Path(job_dir)
    t0 = time.time()
    if not (job_dir / "prompts.csv").exists():
        return write_artifact(job_dir, "augment.json", {"skipped": "needs prompts.csv (passrate.enabled=true)"})
    if not (job_dir / "ledger.csv").exists():
        return write_artifact(job_dir, "augment.json", {"skipped": "not an RL run (U5 asks about RLVR's classes)"})
    with (job_dir / "prompts.csv").open() as fh:
        rows = chosen(list(csv.DictReader(fh)), a["max_prompts"])
    examples = {e.id: e for e in task.train}
    rows = [r for r in rows if r["prompt_id"] in examples]
    kinds = list(a["kinds"])
    augs = KINDS.get(cfg.task.kind).augmentations(cfg.task, [examples[r["prompt_id"]] for r in rows])
    augs = {p: [x for x in v if x.kind in kinds] for p, v in augs.items()}
    if len(rows) < 2 or not any(augs.values()):
        return write_artifact(job_dir, "augment.json", {"skipped": f"task {cfg.task.name!r} gives no augmentations "
                                                                   f"of kinds {kinds} (or fewer than 2 prompts)"})
    from harness.data.models import load_base

    model, tok = load_base(cfg.model, base)
    model.eval()
    sketch = CountSketch(a["dim"], a["seed"])
    names = gradient_params(model, a["params"])

    def grad(prompt: str, target: str) -> np.ndarray:
        return loglik_gradient_sketch(model, tok, prompt, [{"text": target}], names, sketch)[0]

    orig, aug = [], []
    for i, r in enumerate(tqdm(rows, desc="augment: gradient sketches", leave=False)):
        e = examples[r["prompt_id"]]
        orig.append(grad(e.prompt, e.target))
        aug += [(i, x.kind, grad(x.prompt, x.target)) for x in augs.get(e.id, [])]
    sim_orig, sim_aug = similarities(np.stack(orig), aug)
    out_rows = []
    for (i, kind), vals in sorted(sim_aug.items()):
        s_aug = float(np.mean(vals))
        out_rows.append({"prompt_id": rows[i]["prompt_id"], "class": rows[i]["class"], "kind": kind,
                         "n_aug": len(vals), "sim_orig": float(sim_orig[i]), "sim_aug": s_aug,
                         "delta": s_aug - float(sim_orig[i])})
    with atomic_path(job_dir / "augment.csv") as tmp, tmp.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(out_rows)
    by_class: dict[str, dict] = {}
    for c in sorted({r["class"] for r in out_rows}):
        per_prompt: dict[str, list[float]] = {}
        for r in out_rows:
            if r["class"] == c:
                per_prompt.setdefault(r["prompt_id"], []).append(r["delta"])
        by_class[c] = {"prompts": len(per_prompt), "mean_delta": float(np.mean([np.mean(v) for v in per_prompt.values()]))}
    summary = {"prompts": len(rows), "augmentations": len(aug), "kinds": kinds, "dim": a["dim"], "seed": a["seed"],
               "params": a["params"], "at": "base", "completion": "gold", "by_class": by_class,
               "seconds": round(time.time() - t0, 2)}
    return write_artifact(job_dir, "augment.json", summary,
                          {f"augment/{c}/mean_delta": v["mean_delta"] for c, v in by_class.items()})


@measurement("augment", "augment.csv", order=25)
def augment_for_run(cfg: DictConfig, job_dir: Path, merged, tok, task, base) -> dict:
    """After ``passrate``: :func:`augment_run` at the base weights (``merged`` is not used: the gradients are
    taken at W0, as passrate's default)."""
    return augment_run(cfg, job_dir, task, base)


# --- runs already trained -------------------------------------------------------------------------------


def _run_dirs(path: Path) -> list[Path]:
    if (path / ".hydra" / "config.yaml").exists():
        return [path]
    return sorted(p.parent.parent for p in path.glob("*/.hydra/config.yaml"))


def main(argv: list[str] | None = None) -> int:
    """Measure the RL runs of a run or sweep dir that have ``prompts.csv`` and no ``augment.json`` yet."""
    from harness.core.record import read_run
    from harness.data.tasks import build_task

    ap = argparse.ArgumentParser(prog="python -m harness.measure.augment", description=__doc__.split("\n\n")[0])
    ap.add_argument("path", type=Path, help="a run dir or a sweep dir")
    ap.add_argument("--force", action="store_true", help="measure again runs that have augment.json")
    ap.add_argument("overrides", nargs="*", help="augment.<key>=<value> settings, e.g. augment.max_prompts=48")
    args = ap.parse_args(argv)
    runs = _run_dirs(args.path)
    if not runs:
        print(f"error: path {str(args.path)!r} is neither a run dir nor a sweep dir (no */.hydra/config.yaml)",
              file=sys.stderr)
        return 2
    keys = list(block(OmegaConf.create({}), "augment"))
    bad = [o for o in args.overrides if o.split("=", 1)[0].removeprefix("augment.") not in keys
           or not o.startswith("augment.") or "=" not in o]
    if bad:
        print(f"error: override {bad[0]!r} is not augment.<key>=<value> (keys: {', '.join(keys)})", file=sys.stderr)
        return 2
    done = 0
    for run in runs:
        rec = read_run(run) or {}
        if rec.get("status") != "done" or not (run / "prompts.csv").exists() or not (run / "ledger.csv").exists():
            continue
        if (run / "augment.json").exists() and not args.force:
            print(f"[augment] {run.name}: has augment.json (--force to measure again)", flush=True)
            continue
        cfg = OmegaConf.merge(OmegaConf.load(run / ".hydra" / "config.yaml"), OmegaConf.from_dotlist(args.overrides))
        task = build_task(cfg.task)
        out = augment_run(cfg, run, task, rec["base_dir"])
        print(f"[augment] {run.name}: {out.get('skipped') or out.get('by_class')} ({out.get('seconds', 0)} s)",
              flush=True)
        done += 1
    print(f"[augment] measured {done} run(s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
