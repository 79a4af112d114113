"""RLVR with TRL's GRPOTrainer: the task's exact-answer scorer is the reward.

The reward function also keeps the rollout ledger: per step and prompt id, how many rollouts and how many
correct ones were seen (from the reward function's own arguments, no second generation pass).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer

from harness.objectives.common import LogCallback, trainer_args


class Ledger:
    """Rollouts and correct rollouts per (step, prompt id)."""

    def __init__(self) -> None:
        self.counts: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0])

    def add(self, step: int, pid: str, correct: bool) -> None:
        c = self.counts[(step, pid)]
        c[0] += 1
        c[1] += int(correct)

    def write(self, path: Path) -> None:
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["step", "prompt_id", "rollouts", "correct"])
            for (step, pid), (n, k) in sorted(self.counts.items()):
                w.writerow([step, pid, n, k])


def make_reward(task, ledger: Ledger):
    def exact_answer(prompts, completions, answer, prompt_id, trainer_state=None, **_):
        step = trainer_state.global_step if trainer_state is not None else 0
        scores = [task.score(c, a) for c, a in zip(completions, answer)]
        for pid, s in zip(prompt_id, scores):
            ledger.add(step, pid, s > 0)
        return scores

    return exact_answer


def train(model, tokenizer, task, cfg, lr: float, seed: int, out_dir: Path, device: str = "cpu",
          label: str = "rlvr"):
    """Train ``model`` in place with GRPO for ``cfg.steps`` steps; writes ``ledger.csv``."""
    args = GRPOConfig(
        **trainer_args(cfg, out_dir, lr, seed, device),
        # TRL counts completions, not prompts, in the batch size.
        per_device_train_batch_size=cfg.prompts_per_step * cfg.num_generations,
        num_generations=cfg.num_generations,
        max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature,
        beta=cfg.beta,
        loss_type=cfg.loss_type,
        scale_rewards=cfg.get("scale_rewards", "group"),
        use_vllm=cfg.get("use_vllm", False),
        vllm_mode=cfg.get("vllm_mode", "colocate"),
        log_completions=False,
    )
    ledger = Ledger()
    data = Dataset.from_list(task.rl_rows("train"))
    tokenizer.padding_side = "left"
    trainer = GRPOTrainer(model=model, reward_funcs=[make_reward(task, ledger)], args=args,
                          train_dataset=data, processing_class=tokenizer,
                          callbacks=[LogCallback(out_dir / "train_log.jsonl", label)])
    try:
        trainer.train()
    finally:
        ledger.write(out_dir / "ledger.csv")
    return trainer
