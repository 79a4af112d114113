"""RLOO (REINFORCE leave-one-out) with TRL's RLOOTrainer: the same reward, ledger and kept correct rollouts as
``rlvr`` (:mod:`harness.train.objectives.rlvr`), a different advantage.

Per prompt, TRL samples ``num_generations`` completions; completion i's advantage is its reward minus the mean
reward of the *other* completions of its prompt (Ahmadian et al., 2024), with no division by the group's std
(``normalize_advantages=true`` standardises over the whole batch instead), and the clipped ratio is taken per
sequence (summed token log-probabilities), not per token as in GRPO. A KL penalty (``beta`` > 0) enters
the reward, summed over the completion's tokens, rather than the loss as in GRPO. The adapter's default lr is
its RLVR one (``adapter_lr: rlvr`` in ``conf/objective/rloo.yaml``).
"""

from __future__ import annotations

from pathlib import Path

from trl import RLOOConfig, RLOOTrainer

from harness.train.objectives import register
from harness.train.objectives.common import trainer_args
from harness.train.objectives.rlvr import rollout_args, train_with_ledger


@register("rloo")
def train(model, tokenizer, task, cfg, lr: float, seed: int, out_dir: Path, device: str = "cpu",
          label: str = "rloo"):
    """Train ``model`` in place with RLOO for ``cfg.steps`` steps; writes ``ledger.csv`` and
    ``correct_rollouts.jsonl`` like ``rlvr``."""
    args = RLOOConfig(
        **trainer_args(cfg, out_dir, lr, seed, device),
        **rollout_args(cfg),
        normalize_advantages=bool(cfg.get("normalize_advantages", False)),
    )
    return train_with_ledger(RLOOTrainer, args, model, tokenizer, task, cfg, out_dir, label)
