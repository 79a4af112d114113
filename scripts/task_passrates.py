"""Base pass@1 of reasoning-gym tasks on the warmed default base, per task and difficulty component: which tasks
and difficulties the base partly solves (mean pass@1 between ~0.15 and ~0.85), so that RLVR has a signal.

    OMP_NUM_THREADS=1 python scripts/task_passrates.py screen          # candidate components, 40 prompts each
    OMP_NUM_THREADS=1 python scripts/task_passrates.py tasks chain_sum gcd lcm leg_counting   # the task YAMLs
    python scripts/task_passrates.py tasks arithmetic_study --split test --model smollm2-135m-teacher   # a model

pass@1 of a prompt = mean exact-match score (``harness.data.tasks.score``, the RLVR reward) of K = 8 samples at
T = 0.7, 16 new tokens (``passrate``'s defaults), drawn with ``harness.measure.passrate.sample_completions``.
A ``tasks`` run measures each YAML's training split (``--split test``: its held-out split) per ``group`` and
appends a table to ``--out``; ``--model`` names the model config (conf/model) whose warmed base answers.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "harness" / "conf"
TEMPLATE = "{question}\nAnswer:"

# (dataset, group, generator settings): the screen. Small operands first, since the base is a 135M model.
SCREEN: list[tuple[str, str, dict]] = [
    ("chain_sum", "t3d1", dict(min_terms=3, max_terms=3, min_digits=1, max_digits=1)),
    ("chain_sum", "t4d1", dict(min_terms=4, max_terms=4, min_digits=1, max_digits=1)),
    ("chain_sum", "t3d2", dict(min_terms=3, max_terms=3, min_digits=2, max_digits=2)),
    ("gcd", "v20", dict(min_value=1, max_value=20)),
    ("gcd", "v100", dict(min_value=1, max_value=100)),
    ("lcm", "v10", dict(min_value=2, max_value=10)),
    ("lcm", "v20", dict(min_value=2, max_value=20)),
    ("count_bits", "n16", dict(min_n=1, max_n=16)),
    ("count_bits", "n256", dict(min_n=1, max_n=256)),
    ("leg_counting", "a1i3", dict(min_animals=1, max_animals=1, min_instances=1, max_instances=3)),
    ("leg_counting", "a2i3", dict(min_animals=2, max_animals=2, min_instances=1, max_instances=3)),
    ("letter_counting", "w3", dict(min_words=3, max_words=3)),
    ("letter_counting", "w6", dict(min_words=6, max_words=6)),
    ("simple_equations", "t2v10", dict(min_terms=2, max_terms=2, min_value=1, max_value=10)),
    ("number_sequence", "c1", dict(min_terms=4, max_terms=5, min_value=0, max_value=20, max_complexity=1)),
    ("prime_factorization", "v30", dict(min_value=2, max_value=30)),
    # second round: easier components beside the ones that came out below 0.15
    ("chain_sum", "t2d1", dict(min_terms=2, max_terms=2, min_digits=1, max_digits=1)),
    ("gcd", "v10", dict(min_value=1, max_value=10)),
    ("lcm", "v6", dict(min_value=2, max_value=6)),
    ("letter_counting", "w2", dict(min_words=2, max_words=2)),
]


def load_base(model: str = "smollm2-135m"):
    """The warmed base of ``model=<model>`` (built and cached first if needed), on one thread."""
    import torch
    from hydra import compose, initialize_config_dir

    from harness.data.models import load_base as load

    torch.set_num_threads(1)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["logger=none", f"model={model}"])
    from harness.train.warmup import resolve_base

    model, tok = load(cfg.model, resolve_base(cfg.model), device="cpu")
    model.eval()
    return model, tok, cfg


def passrates(model, tok, examples, k: int, temperature: float, max_new_tokens: int, seed: int) -> dict[str, float]:
    """pass@1 per example id, and a check that the scorer accepts each gold answer and rejects a wrong one."""
    from harness.data.tasks import score
    from harness.measure.passrate import sample_completions

    for e in examples:
        assert score(e.answer, e.answer) == 1, (e.prompt, e.answer)
    samples = sample_completions(model, tok, examples, k=k, temperature=temperature, max_new_tokens=max_new_tokens,
                                 seed=seed, desc="pass@1")
    return {e.id: float(np.mean([score(c["text"], e.answer) for c in samples[e.id]])) for e in examples}


def row(task: str, group: str, settings: str, examples, rates: dict[str, float], seconds: float) -> str:
    p = np.array([rates[e.id] for e in examples])
    return (f"| {task} | {group} | {settings} | {len(p)} | {p.mean():.3f} | {np.mean(p <= 0.1):.2f} | "
            f"{np.mean((p > 0.1) & (p < 0.9)):.2f} | {np.mean(p >= 0.9):.2f} | {seconds:.0f} |")


HEADER = ("| task | group | settings | prompts | mean pass@1 | share ≤ 0.1 | share in (0.1, 0.9) | share ≥ 0.9 | s |\n"
          "|---|---|---|---|---|---|---|---|---|")


def screen(model, tok, args) -> list[str]:
    from harness.data.tasks.reasoning_gym import ReasoningGym

    lines = []
    for dataset, group, settings in SCREEN:
        if args.only and f"{dataset}/{group}" not in args.only:
            continue
        cfg = OmegaConf.create({"name": dataset, "kind": "reasoning_gym", "dataset": dataset,
                                "prompt_template": TEMPLATE, "common": {}, "mix": [{"group": group, **settings}],
                                "n_train": args.n, "n_test": 0, "seed": 1234})
        t0 = time.time()
        examples = ReasoningGym.examples(cfg)
        rates = passrates(model, tok, examples, args.k, args.temperature, args.max_new_tokens, args.seed)
        lines.append(row(dataset, group, ", ".join(f"{k}={v}" for k, v in settings.items()), examples, rates,
                         time.time() - t0))
        print(lines[-1], flush=True)
    return lines


def tasks(model, tok, names: list[str], args) -> list[str]:
    from hydra import compose, initialize_config_dir

    from harness.data.tasks import build_task

    lines = []
    for name in names:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose(config_name="config", overrides=["logger=none", f"task={name}"]).task
        task = build_task(cfg)
        t0 = time.time()
        split = task.test if args.split == "test" else task.train
        rates = passrates(model, tok, split, args.k, args.temperature, args.max_new_tokens, args.seed)
        dt = time.time() - t0
        groups = list(dict.fromkeys(e.group for e in split))
        for g in groups:
            comp = next(c for c in cfg.mix if c.get("group") == g)
            settings = ", ".join(f"{k}={v}" for k, v in comp.items() if k not in ("group", "weight"))
            lines.append(row(f"task={name}", g, settings, [e for e in split if e.group == g], rates, dt))
            print(lines[-1], flush=True)
        lines.append(row(f"task={name}", "all", f"{cfg.dataset}, {args.split} split", split, rates, dt))
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=["screen", "tasks"])
    ap.add_argument("names", nargs="*", help="task YAMLs (tasks mode)")
    ap.add_argument("--only", nargs="*", default=None, help="screen only these dataset/group entries")
    ap.add_argument("--n", type=int, default=40, help="prompts per component (screen)")
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split", choices=["train", "test"], default="train", help="the split measured (tasks mode)")
    ap.add_argument("--model", default="smollm2-135m", help="model config of conf/model whose warmed base answers")
    ap.add_argument("--out", type=Path, default=None, help="append the table to this markdown file")
    args = ap.parse_args()
    model, tok, cfg = load_base(args.model)
    t0 = time.time()
    lines = screen(model, tok, args) if args.mode == "screen" else tasks(model, tok, args.names, args)
    if args.out is not None:
        from harness.core.store import atomic_write_text

        old = args.out.read_text() if args.out.exists() else ""
        title = ("Screen: candidate components" if args.mode == "screen"
                 else f"The task YAMLs ({args.split} split), model={args.model}")
        block = (f"\n## {title}\n\nK = {args.k}, T = {args.temperature}, {args.max_new_tokens} new tokens, "
                 f"sampling seed {args.seed}, base: warmed `{cfg.model.name}`; {time.time() - t0:.0f} s in all "
                 f"(1 thread, shared 2-core machine).\n\n{HEADER}\n" + "\n".join(lines) + "\n")
        atomic_write_text(args.out, old + block)


if __name__ == "__main__":
    main()
