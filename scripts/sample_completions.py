"""Completions the warmed default base actually writes, in the RLVR rollout regime, for the scorer's measurements.

    OMP_NUM_THREADS=1 python scripts/sample_completions.py --out tests/fixtures/smollm2_rollouts.jsonl

Per task (the five built-in task kinds), the first ``--n`` training prompts, ``--k`` samples each at the GRPO
rollout settings (``conf/objective/rlvr.yaml``: temperature 1.0, 12 new tokens, no stop string but EOS), drawn
with ``harness.measure.passrate.sample_completions``. One JSON object per line: task, prompt_id, prompt, answer,
text, eos. ``python -m harness.bench scorer`` times the scorer on them and ``docs/scoring.md`` measures the
extractor's rules on them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "harness" / "conf"
TASKS = ["arithmetic_study", "chain_sum", "gcd", "lcm", "letter_counting"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tasks", nargs="*", default=TASKS)
    ap.add_argument("--n", type=int, default=40, help="training prompts per task")
    ap.add_argument("--k", type=int, default=8, help="samples per prompt")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--max-new-tokens", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-warmup", action="store_true", help="the raw base (model.warmup.enabled=false)")
    args = ap.parse_args()

    import torch
    from hydra import compose, initialize_config_dir

    from harness.data.models import load_base
    from harness.data.tasks import build_task
    from harness.measure.passrate import sample_completions

    torch.set_num_threads(1)
    rows = []
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config",
                      overrides=["logger=none"] + (["model.warmup.enabled=false"] if args.no_warmup else []))
        model, tok = load_base(cfg.model, device="cpu")
        model.eval()
        for name in args.tasks:
            t0 = time.time()
            task = build_task(compose(config_name="config", overrides=["logger=none", f"task={name}"]).task)
            examples = task.train[: args.n]
            samples = sample_completions(model, tok, examples, k=args.k, temperature=args.temperature,
                                         max_new_tokens=args.max_new_tokens, seed=args.seed, desc=name)
            for e in examples:
                rows += [{"task": name, "prompt_id": e.id, "prompt": e.prompt, "answer": e.answer,
                          "text": s["text"], "eos": s["eos"]} for s in samples[e.id]]
            print(f"{name}: {len(examples)} prompts x {args.k} in {time.time() - t0:.0f} s", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {len(rows)} completions to {args.out}")


if __name__ == "__main__":
    main()
