"""Rejection-sampling fine-tuning (on-policy SFT): SFT on the model's own verifier-accepted samples.

*Retaining by Doing* (arXiv 2510.18874) argues that RL forgets less than SFT because its data is on-policy, not
because of its KL term or its advantage: SFT on the model's own correct samples should forget as little as RLVR
(claim RD1). This objective is that arm: before training, ``samples_per_prompt`` completions per train prompt
are sampled from the starting model (:func:`harness.data.sampling.sample_completions`, the sampler of pass@k
and the pass rates), the task's verifier keeps the correct ones (distinct texts per prompt), and TRL's
SFTTrainer trains on exactly those rows for ``steps`` steps (:func:`harness.train.objectives.sft.train`).

Writes ``rft.json`` (prompts, samples, accepted, distinct rows, prompts with a row) and ``rft_samples.jsonl``
(the rows trained on). A start that accepts nothing fails the run with that reason: there is nothing to train.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from harness.core import dist
from harness.train.objectives import register
from harness.train.objectives.sft import train as sft_train

if TYPE_CHECKING:
    from harness.data.tasks import Task


class NothingAccepted(RuntimeError):
    """No sample of the starting model was correct: on-policy SFT has no data."""


def accepted_rows(task: Task, samples: dict[str, list[dict]]) -> tuple[list[dict], dict]:
    """The prompt-completion rows of the verifier-accepted samples (each distinct text of a prompt once, in
    sampling order) and the counts for ``rft.json``."""
    by_id = {e.id: e for e in task.train}
    rows, n_samples, n_accepted, with_row = [], 0, 0, 0
    for pid, outs in samples.items():
        e, seen = by_id[pid], set()
        for o in outs:
            n_samples += 1
            if task.score(o["text"], e.answer) > 0:
                n_accepted += 1
                if o["text"] not in seen:
                    seen.add(o["text"])
                    rows.append({"prompt": e.prompt, "completion": o["text"], "prompt_id": pid})
        with_row += bool(seen)
    return rows, {"prompts": len(samples), "samples": n_samples, "accepted": n_accepted,
                  "accept_rate": n_accepted / max(1, n_samples), "rows": len(rows), "prompts_with_row": with_row}


@register("rft")
def train(model, tokenizer, task, cfg, lr: float, seed: int, out_dir: Path, device: str = "cpu",
          label: str = "rft"):
    """Sample, keep the verifier-accepted samples, and SFT ``model`` in place on them for ``cfg.steps`` steps."""
    from harness.data.sampling import sample_completions

    was_training = model.training
    model.eval()
    # every process samples the same completions (same seed, same weights), so every rank trains on the same rows
    samples = sample_completions(model, tokenizer, task.train, k=int(cfg.samples_per_prompt),
                                 temperature=float(cfg.temperature), max_new_tokens=int(cfg.max_completion_length),
                                 seed=seed, desc="rft samples")
    model.train(was_training)
    rows, counts = accepted_rows(task, samples)
    if dist.is_main():
        (out_dir / "rft.json").write_text(json.dumps(counts, indent=1))
        with (out_dir / "rft_samples.jsonl").open("w") as fh:
            for r in rows:
                fh.write(json.dumps(r) + "\n")
    print(f"[{label}] on-policy rows: {counts['rows']} distinct correct samples of {counts['samples']} "
          f"({counts['prompts_with_row']}/{counts['prompts']} prompts)", flush=True)
    if not rows:
        raise NothingAccepted(f"rft: none of {counts['samples']} samples of the starting model was correct")
    return sft_train(model, tokenizer, task, cfg, lr, seed, out_dir, device, label,
                     rows=[{"prompt": r["prompt"], "completion": r["completion"]} for r in rows])
