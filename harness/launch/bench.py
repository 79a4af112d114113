"""Performance benchmarks, each printed as timings and ratios measured in one run.

    harness bench analyzer [model=smollm2-135m | tiny | <checkpoint dir>] [layers=N] [threads=T]
    harness bench null [model=...] [repeats=R]
    harness bench sampler [model=...] [repeats=R]
    harness bench stats [model=...] [repeats=R]
    harness bench pairs [shape=qwen2.5-0.5b | qwen2.5-1.5b] [layers=N]   (harness.analysis.pairs.bench)
    harness bench scorer [completions=FILE.jsonl | SWEEP_OR_RUN_DIR] [repeats=R]
    harness bench trajectory [model=...] [adapter=full | lora | ...] [repeats=R]

(``python -m harness.bench ...`` alike.)

``analyzer``: the geometry analyzer on the model's attention/MLP matrices with a synthetic ΔW (rank 8 +
1 % sparse, each part 1e-3·‖W0‖_F), timing
  (a) a naive baseline: numpy full SVD (float64, with vectors) of W0, W1 and ΔW per matrix, no cache;
  (b) the harness analyzer with a warm base-spectrum cache (what every run of a sweep pays);
  (c) the irreducible part: the singular values of every W1 (``torch.linalg.svdvals``, batched by shape);
and prints b/a, b/c and the largest difference between the metric values of (a) and (b).

``null``: what the random-update null columns (``Settings.null``) add to the analyzer: the warm-cache analysis
of the same synthetic ΔW without and with them, alternated ``repeats`` times (best of each, as the machine
may be shared), printed as a ratio to the analyzer's own time; likewise for adding a gap-aware k.

``sampler``: keyed sampling (the rollouts' default, the same at any world size) against torch's sampler.
``scorer``: the time per call of :func:`harness.data.tasks.score` (median, p99, max; best of ``repeats`` per input)
on the adversarial table (:mod:`harness.data.tasks._adversarial`), on the main thread and on a worker thread, and on
real completions (default: ``tests/fixtures/smollm2_rollouts.jsonl``, rollouts of the warmed SmolLM2 base; or a
JSONL of ``text``/``answer`` rows, or a sweep or run dir: its eval samples and kept correct rollouts), beside
math-verify alone (parse + verify) on the same completions; which final-answer rule decided each real
completion; and every call over 1 s.
``trajectory``: what ``trajectory.every`` adds, as ratios to one optimizer step of the same model (see
:func:`bench_trajectory`).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch

from harness import CONF_DIR  # noqa: E402
from harness.analysis.pairs.bench import bench_pairs  # noqa: E402
from harness.launch.cli import ArgumentError, int_option, split_options  # noqa: E402


def resolve_model(model: str) -> Path:
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    conf = CONF_DIR / "model" / f"{model}.yaml"
    if not conf.exists():
        valid = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml") if p.stem != "hf")
        raise SystemExit(_fail(f"error: unknown model {model!r}; valid: {', '.join(valid)} or a checkpoint dir"))
    from omegaconf import OmegaConf

    from harness.data.models import source_dir

    return Path(source_dir(OmegaConf.load(conf)))


def _fail(msg: str) -> int:
    print(msg, file=sys.stderr)
    return 2


def naive_metrics(w0s: dict[str, torch.Tensor], deltas: dict[str, torch.Tensor], settings) -> pd.DataFrame:
    """Baseline (a): full float64 numpy SVDs of W0, W1, ΔW, one matrix at a time; same metric formulas."""
    from harness.analysis.geometry.metrics import update_metrics
    from harness.analysis.geometry.spectra import Decomp

    rows = []
    for name, w0 in w0s.items():
        d = deltas[name]
        m, n = w0.shape
        ks = list(zip(settings.labels(), settings.k_values(m, n)))
        big = max(k for _, k in ks)
        dec = {}
        for key, w in (("w0", w0), ("w1", w0 + d), ("d", d)):
            u, s, vh = np.linalg.svd(w.numpy().astype(np.float64), full_matrices=False)
            dec[key] = Decomp(torch.from_numpy(s)[None], torch.from_numpy(u[:, :big])[None],
                              torch.from_numpy(vh[:big].T.copy())[None])
        res = update_metrics(w0[None], d[None], d.double()[None], dec["w0"], dec["w1"], dec["d"].S, ks,
                             settings.alpha)
        rows.append({"name": name, **{k: float(v[0]) for k, v in res.items()}})
    return pd.DataFrame(rows)


def cold_analysis(base_dir: Path, deltas: dict[str, torch.Tensor], settings) -> float:
    """Seconds of a first analysis of this base: hashing the weights and building its cache (in a
    throw-away cache root, so the user's cache is left as it is)."""
    from harness.analysis.geometry.analyze_run import analyze_delta
    from harness.analysis.geometry.sources import Checkpoint
    from harness.analysis.geometry.spectra import SpectraCache
    from harness.analysis.geometry.synthetic import MemoryDelta

    old = os.environ.get("HARNESS_CACHE")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["HARNESS_CACHE"] = tmp
        SpectraCache.clear_memory()
        try:
            t, _ = _timed(lambda: analyze_delta(Checkpoint(base_dir), MemoryDelta(deltas), settings))
        finally:
            if old is None:
                os.environ.pop("HARNESS_CACHE")
            else:
                os.environ["HARNESS_CACHE"] = old
            SpectraCache.clear_memory()
    return t


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def bench_analyzer(model: str = "smollm2-135m", layers: int | None = None, seed: int = 0) -> str:
    from harness.analysis.geometry.analyze_run import analyze_delta
    from harness.analysis.geometry.metrics import Settings
    from harness.analysis.geometry.sources import Checkpoint, matrix_kind
    from harness.analysis.geometry.spectra import SpectraCache, by_shape, gram_decomp
    from harness.analysis.geometry.synthetic import MemoryDelta, synthetic_delta

    base_dir = resolve_model(model)
    ckpt = Checkpoint(base_dir)
    names = [n for n in ckpt.analyzed() if layers is None or matrix_kind(n)[0] < layers]
    gen = torch.Generator().manual_seed(seed)
    w0s = {n: ckpt.get(n).float() for n in names}
    deltas = {n: synthetic_delta(w0s[n], gen) for n in names}
    settings = Settings()

    ta, ref = _timed(lambda: naive_metrics(w0s, deltas, settings))
    t_cold = cold_analysis(base_dir, deltas, settings)
    SpectraCache.clear_memory()
    analyze_delta(ckpt, MemoryDelta(deltas), settings)  # builds this base's cache if it is not there yet
    SpectraCache.clear_memory()  # (b) reads the warm cache from disk, as a new analysis process does
    tb, fast = _timed(lambda: analyze_delta(ckpt, MemoryDelta(deltas), settings))

    groups = by_shape(names, ckpt.shape)

    def spectra(fn: Callable[[torch.Tensor], object], with_delta: bool = False) -> None:
        for group in groups.values():
            fn(torch.stack([w0s[n] + deltas[n] for n in group]))
            if with_delta:
                fn(torch.stack([deltas[n] for n in group]).double())

    tc, _ = _timed(lambda: spectra(torch.linalg.svdvals))
    # The floor of any exact analyzer: all σ of W1 (drift) and all σ of ΔW (effective rank), here with the
    # analyzer's own method (float64 Gram eigenvalues).
    t_floor, _ = _timed(lambda: spectra(lambda w: gram_decomp(w.double()), with_delta=True))

    fast = fast.set_index("name").loc[ref["name"]]
    cols = [c for c in ref.columns if c != "name" and c in fast.columns]
    diff = (ref.set_index("name")[cols] - fast[cols]).abs()
    worst_col = diff.max().idxmax()
    worst = float(diff.max().max())
    n_params = sum(w.numel() for w in w0s.values())
    shapes = ", ".join(f"{len(g)}×{s[0]}×{s[1]}" for s, g in groups.items())
    lines = [
        f"analyzer bench: {model} ({base_dir}), {len(names)} matrices ({shapes}; {n_params / 1e6:.1f} M "
        f"params), synthetic ΔW rank 8 + 1% sparse, torch threads {torch.get_num_threads()}",
        f"  (a) naive: numpy full SVD of W0, W1, ΔW per matrix   {ta:8.2f} s",
        f"  (b) harness analyzer, warm base cache              {tb:8.2f} s   (first analysis of this base, "
        f"building the cache: {t_cold:.2f} s)",
        f"  (c) singular values of W1 alone (svdvals)          {tc:8.2f} s",
        f"  b/a = {tb / ta:.3f} ({ta / tb:.1f}x faster; target >= 10x)   b/c = {tb / tc:.2f} (target <= 1.5)",
        f"  floor: all σ of W1 and of ΔW (float64 Gram eigenvalues) {t_floor:.2f} s: b/floor = {tb / t_floor:.2f}",
        f"  max |metric(a) - metric(b)| = {worst:.2e} ({worst_col}; target <= 1e-4)",
    ]
    return "\n".join(lines)


def bench_null(model: str = "smollm2-135m", layers: int | None = None, seed: int = 0, repeats: int = 3) -> str:
    """Analyzer time without / with the null columns (and with ``gap16`` added), warm base cache."""
    from harness.analysis.geometry.analyze_run import analyze_delta
    from harness.analysis.geometry.metrics import Settings
    from harness.analysis.geometry.sources import Checkpoint, matrix_kind
    from harness.analysis.geometry.spectra import SpectraCache
    from harness.analysis.geometry.synthetic import MemoryDelta, synthetic_delta

    base_dir = resolve_model(model)
    ckpt = Checkpoint(base_dir)
    names = [n for n in ckpt.analyzed() if layers is None or matrix_kind(n)[0] < layers]
    gen = torch.Generator().manual_seed(seed)
    delta = MemoryDelta({n: synthetic_delta(ckpt.get(n).float(), gen) for n in names})
    variants = {"plain": Settings(null=False), "null": Settings(), "null+gap16": Settings(ks=(16, 0.01, "gap16"))}
    SpectraCache.clear_memory()
    for st in variants.values():  # warm the base cache (and the page cache) for every variant
        analyze_delta(ckpt, delta, st)
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(max(1, repeats)):
        for key, st in variants.items():
            best[key] = min(best[key], _timed(lambda st=st: analyze_delta(ckpt, delta, st))[0])
    plain = best["plain"]
    return "\n".join([
        f"null bench: {model} ({base_dir}), {len(names)} matrices, synthetic ΔW, torch threads "
        f"{torch.get_num_threads()}, best of {max(1, repeats)}",
        f"  analyzer without null columns                 {plain:8.2f} s",
        f"  analyzer with null columns (default)          {best['null']:8.2f} s   "
        f"null adds {(best['null'] - plain) / plain:+.1%} (target <= +25%)",
        f"  with null columns and k=gap16 added           {best['null+gap16']:8.2f} s   "
        f"{(best['null+gap16'] - plain) / plain:+.1%} vs without null",
    ])


def bench_stats(model: str = "smollm2-135m", layers: int | None = None, seed: int = 0, repeats: int = 3) -> str:
    """What the per-run statistics cost beside the analyzer, in one process: a run's paired comparisons with
    the base (eval.json: per task a paired bootstrap of 10,000 resamples, McNemar's exact test and two Wilson
    intervals; the study's sizes: 200 held-out + 2 x 100 OOD prompts), timed against the analyzer on the same
    model (warm base cache, default settings)."""
    import numpy as np

    from harness.analysis.geometry.analyze_run import analyze_delta
    from harness.analysis.geometry.metrics import Settings
    from harness.analysis.geometry.sources import Checkpoint, matrix_kind
    from harness.analysis.geometry.spectra import SpectraCache
    from harness.analysis.geometry.synthetic import MemoryDelta, synthetic_delta
    from harness.core import stats

    base_dir = resolve_model(model)
    ckpt = Checkpoint(base_dir)
    names = [n for n in ckpt.analyzed() if layers is None or matrix_kind(n)[0] < layers]
    gen = torch.Generator().manual_seed(seed)
    delta = MemoryDelta({n: synthetic_delta(ckpt.get(n).float(), gen) for n in names})
    rng = np.random.default_rng(seed)
    tasks = [(rng.random(n) < 0.6, rng.random(n) < 0.5) for n in (200, 100, 100)]

    def per_run() -> None:
        for run, base in tasks:
            stats.paired_bootstrap(run.astype(float), base.astype(float))
            stats.mcnemar(run.astype(float), base.astype(float))
            stats.accuracy_interval(run.astype(float))
            stats.accuracy_interval(base.astype(float))

    SpectraCache.clear_memory()
    analyze_delta(ckpt, delta, Settings())  # warm the base cache
    analyzer = min(_timed(lambda: analyze_delta(ckpt, delta, Settings()))[0] for _ in range(max(1, repeats)))
    per = min(_timed(per_run)[0] for _ in range(max(1, repeats)))
    return "\n".join([
        f"stats bench: {model}, {len(names)} matrices; torch threads {torch.get_num_threads()}, best of "
        f"{max(1, repeats)}",
        f"  analyzer, one run (default settings)                  {analyzer:8.3f} s",
        f"  paired bootstrap + McNemar + Wilson, 3 tasks/400 prompts {per:8.3f} s   "
        f"{per / analyzer:.1%} of the analyzer",
    ])


def bench_sampler(model: str = "smollm2-135m", seed: int = 0, repeats: int = 3) -> str:
    """What keyed sampling (harness.data.sampling, GRPO/RLOO rollouts by default) costs against torch's own sampler:
    one GRPO generation batch (2 prompts x 8 completions x 12 tokens, the study's) through ``generate``, both
    ways, alternated ``repeats`` times (best of each)."""
    from harness.data.models import load_model
    from harness.data.sampling import keyed_generate

    path = resolve_model(model)
    m, tok = load_model(path)
    m.eval()
    prompts = ["What is 47 + 85?\nAnswer:", "What is 312 + 9?\nAnswer:"]
    enc = tok([p for p in prompts for _ in range(8)], return_tensors="pt", padding=True)
    kw = dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=12, min_new_tokens=12,
              pad_token_id=tok.pad_token_id)

    def plain() -> None:
        with torch.no_grad():
            m.generate(**enc, **kw)

    keyed_model, _ = load_model(path)
    keyed_model.eval()
    keyed_generate(keyed_model, seed)

    def keyed() -> None:
        with torch.no_grad():
            keyed_model.generate(**enc, **kw)

    plain(), keyed()  # warm-up
    t_plain = min(_timed(plain)[0] for _ in range(max(1, repeats)))
    t_keyed = min(_timed(keyed)[0] for _ in range(max(1, repeats)))
    vocab = m.config.vocab_size
    return "\n".join([
        f"sampler bench: {model} (vocab {vocab}), 16 completions x 12 tokens; torch threads "
        f"{torch.get_num_threads()}, best of {max(1, repeats)}",
        f"  torch sampler (multinomial)        {t_plain:8.3f} s",
        f"  keyed sampler (Gumbel-max, keyed)  {t_keyed:8.3f} s   ratio keyed/torch {t_keyed / t_plain:.2f}",
    ])


ROLLOUTS = CONF_DIR.parent.parent / "tests" / "fixtures" / "smollm2_rollouts.jsonl"


def real_completions(path: Path) -> list[tuple[object, object]]:
    """(completion, gold) pairs: a JSONL of ``text``/``answer`` rows (``completion``/``target`` too), or the eval
    samples and kept correct rollouts (gold from the rebuilt task) of a sweep or run dir."""
    import json

    from harness.analysis.sweep import run_dirs

    if path.is_file():
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [(r.get("text", r.get("completion")), r.get("answer", r.get("target"))) for r in rows]
    pairs: list[tuple[object, object]] = []
    for run in run_dirs(path):
        pairs += [(r.get("completion"), r.get("target")) for r in run.eval_samples()]
        examples = run.examples() or {}
        pairs += [(r.get("text"), examples[pid].answer) for pid, rs in run.correct_rollouts().items()
                  if pid in examples for r in rs]
    return pairs


def _per_call(pairs: list[tuple[object, object]], fn: Callable[[object, object], object], repeats: int) -> np.ndarray:
    """Seconds per call of ``fn(completion, gold)``, best of ``repeats`` per pair (the machine may be shared)."""
    out = np.empty(len(pairs))
    for i, (c, g) in enumerate(pairs):
        best = float("inf")
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            fn(c, g)
            best = min(best, time.perf_counter() - t0)
        out[i] = best
    return out


def _fmt_s(s: float) -> str:
    return f"{s * 1e6:7.1f} µs" if s < 1e-3 else f"{s * 1e3:7.1f} ms" if s < 1 else f"{s:7.2f} s "


def _line(label: str, t: np.ndarray, names: list[str] | None = None) -> str:
    worst = int(np.argmax(t))
    what = f" ({names[worst]})" if names else ""
    return (f"  {label:<44} median {_fmt_s(float(np.median(t)))}  p99 {_fmt_s(float(np.percentile(t, 99)))}  "
            f"max {_fmt_s(float(t[worst]))}{what}")


def _math_verify_alone(completion: object, gold: object) -> bool:
    """The baseline: math-verify's own extraction and check, on the main thread (its signal timeout works)."""
    from math_verify import parse, verify

    try:
        return bool(verify(parse(str(gold)), parse(str(completion))))
    except Exception:
        return False


def bench_scorer(completions: str | None = None, repeats: int = 3) -> str:
    """Time per scorer call on the adversarial table and on real completions; see the module docstring."""
    import collections
    import concurrent.futures

    from harness.data.tasks import _mathverify
    from harness.data.tasks._adversarial import CASES
    from harness.data.tasks.scoring import RULES, extract, score

    path = Path(completions).expanduser() if completions else ROLLOUTS
    if not path.exists():
        raise SystemExit(_fail(f"error: bad completions {str(path)!r}; valid: a JSONL file of text/answer rows "
                               "or a sweep or run dir"))
    real = real_completions(path)
    if not real:
        raise SystemExit(_fail(f"error: bad completions {str(path)!r}; valid: a file or dir holding completions "
                               "(no text/answer rows, eval samples or kept rollouts found)"))
    t0 = time.perf_counter()
    _mathverify.warm()
    start = time.perf_counter() - t0
    table = [(c[1], c[2]) for c in CASES]
    names = [f"{c[0]}: {c[4]}" for c in CASES]
    main = _per_call(table, score, repeats)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        thread = pool.submit(_per_call, table, score, repeats).result()
    ours = _per_call(real, score, repeats)
    _math_verify_alone("$1$", "1")  # sympy imported before timing
    alone = _per_call(real, _math_verify_alone, repeats)
    rules = collections.Counter(extract(c)[0] or "(no text)" for c, _ in real)
    slow = [n for n, t in zip(names, np.maximum(main, thread)) if t > 1.0] + \
           [repr(str(c)[:40]) for (c, _), t in zip(real, ours) if t > 1.0]
    return "\n".join([
        f"scorer bench: {len(table)} adversarial cases, {len(real)} real completions ({path}); per call, best of "
        f"{max(1, repeats)} (a shared machine's load inflates these; the ratio is measured in the same run)",
        f"  math-verify helper start (once per process)   {start:7.2f} s",
        _line("adversarial table, main thread", main, names),
        _line("adversarial table, worker thread", thread, names),
        _line("real completions, harness scorer", ours),
        _line("real completions, math-verify alone", alone),
        f"  harness scorer / math-verify alone (median)    {np.median(ours) / np.median(alone):.3f}",
        "  final-answer rule on the real completions: " + ", ".join(f"{r} {rules.get(r, 0)}"
                                                                    for r in [*RULES, "(no text)"]),
        f"  calls over 1 s: {len(slow)}" + (": " + "; ".join(slow) if slow else ""),
    ])


def bench_trajectory(model: str = "smollm2-135m", adapter: str = "full", seed: int = 0, repeats: int = 3) -> str:
    """What ``trajectory.every`` costs against one optimizer step of the same model (forward, backward and AdamW on
    8 sequences of 32 tokens): the per-step PULSE figure (every step), a full fp32 snapshot and a sketched one
    (each written to a temporary dir), best of ``repeats``, and the bytes each snapshot takes."""
    from omegaconf import OmegaConf
    from transformers import TrainerState

    from harness.data.models import load_model
    from harness.train.adapters import analyzed_weights, build_adapter
    from harness.train.adapters.base import clone_state
    from harness.train.trajectory import TrajectoryCallback

    conf = CONF_DIR / "adapter" / f"{adapter}.yaml"
    if not conf.exists():
        valid = sorted(p.stem for p in (CONF_DIR / "adapter").glob("*.yaml"))
        raise SystemExit(_fail(f"error: unknown adapter {adapter!r}; valid: {', '.join(valid)}"))
    m, tok = load_model(resolve_model(model))
    names = analyzed_weights(m.state_dict())
    original = clone_state(m, names)
    ad = build_adapter(OmegaConf.load(conf), seed=seed)
    pm = ad.prepare(m)
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, int(m.config.vocab_size), (8, 32), generator=gen)
    opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=1e-5, weight_decay=0.0)

    def step() -> None:
        pm(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad()

    state = TrainerState(max_steps=10**6)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        cbs = {kind: TrajectoryCallback(Path(tmp) / kind, ad, original, names, every=10**6,
                                        dtypes=["float32", "bfloat16"], sketch=kind == "sketch", sketch_dim=64,
                                        sketch_seed=seed, max_full_gb=2.0) for kind in ("full", "sketch")}
        for cb in cbs.values():
            cb.on_train_begin(None, state, None, model=pm)
        step()  # warm-up
        reps = max(1, repeats)
        t_step = min(_timed(step)[0] for _ in range(reps))
        t_pulse = min(_timed(lambda: cbs["full"].on_step_end(None, state, None, model=pm))[0] for _ in range(reps))
        for kind, cb in cbs.items():
            t = min(_timed(lambda c=cb: c._snapshot(pm, 1))[0] for _ in range(reps))
            out[kind] = (t, cb.meta["snapshots"][-1]["bytes"])
    n = sum(original[k].numel() for k in names)
    lines = [f"trajectory bench: {model}, adapter {adapter}, {len(names)} matrices ({n:,} entries); torch threads "
             f"{torch.get_num_threads()}, best of {max(1, repeats)}",
             f"  optimizer step (8 x 32 tokens)     {t_step:8.3f} s",
             f"  PULSE figure (fp32 + bf16)         {t_pulse:8.3f} s   ratio to a step {t_pulse / t_step:.2f}"]
    for kind, (t, size) in out.items():
        lines.append(f"  snapshot, {kind:<6}                  {t:8.3f} s   ratio to a step {t / t_step:.2f}   "
                     f"{size / 1e6:9.2f} MB")
    return "\n".join(lines)


BENCHES: dict[str, Callable[[SimpleNamespace], str]] = {
    "trajectory": lambda a: bench_trajectory(a.model, a.adapter, a.seed, a.repeats),
    "sampler": lambda a: bench_sampler(a.model, a.seed, a.repeats),
    "analyzer": lambda a: bench_analyzer(a.model, a.layers, a.seed),
    "null": lambda a: bench_null(a.model, a.layers, a.seed, a.repeats),
    "stats": lambda a: bench_stats(a.model, a.layers, a.seed, a.repeats),
    "pairs": bench_pairs,
    "scorer": lambda a: bench_scorer(a.completions, a.repeats),
}


#: The options of every bench (``key=value``, the one argument style of the ``harness`` commands).
OPTIONS = {
    "model": "model name (conf/model) or checkpoint dir (default smollm2-135m)",
    "layers": "only the first N layers (quicker)",
    "seed": "seed of the synthetic update or the sampled prompts (default 0)",
    "repeats": "timings alternated this many times, best kept (default 3)",
    "shape": "pairs: the model shape the pair is built from (default qwen2.5-0.5b)",
    "completions": "scorer: real completions, a JSONL of text/answer rows or a sweep/run dir",
    "threads": "torch/BLAS threads (1 gives steadier timings on a shared machine)",
    "adapter": "trajectory: the adapter whose ΔW is recorded (default full)",
}


def parse(argv: list[str]) -> tuple[str, SimpleNamespace]:
    """(bench name, options with their defaults) of ``harness bench <name> [key=value ...]``."""
    names, opts = split_options(argv, OPTIONS)
    if len(names) != 1 or names[0] not in BENCHES:
        got = repr(names[0]) if names else "nothing"
        raise ArgumentError(f"error: unknown bench {got}; valid: {', '.join(BENCHES)}")
    return names[0], SimpleNamespace(
        model=opts.get("model", "smollm2-135m"), layers=int_option(opts, "layers", None),
        seed=int_option(opts, "seed", 0, lo=0), repeats=int_option(opts, "repeats", 3),
        shape=opts.get("shape", "qwen2.5-0.5b"), completions=opts.get("completions"),
        adapter=opts.get("adapter", "full"),
        threads=int_option(opts, "threads", None))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip() + "\n\noptions:\n" + "\n".join(f"  {k}=  {v}" for k, v in OPTIONS.items()))
        return
    try:
        name, args = parse(argv)
    except ArgumentError as exc:
        raise SystemExit(_fail(str(exc))) from None
    if args.threads:
        torch.set_num_threads(args.threads)
        try:  # numpy's BLAS too, for a fair (a)
            from threadpoolctl import threadpool_limits

            threadpool_limits(args.threads)
        except ImportError:
            print("[harness] threadpoolctl missing: numpy's BLAS threads not limited", file=sys.stderr)
    print(BENCHES[name](args), flush=True)


if __name__ == "__main__":
    main()
