"""RLVR with TRL's GRPOTrainer: the task's exact-answer scorer is the reward (or ``objective.reward``, a
registered reward: random, format-only, negated; :mod:`harness.data.rewards`).

The reward function also keeps the rollout ledger, from its own arguments (no second generation pass): per step
and prompt id, how many rollouts and how many correct ones were seen (``ledger.csv``), and the token ids of the
first correct rollouts of each prompt (``correct_rollouts.jsonl``), whose gradients the unlearnability analysis
compares (:mod:`harness.measure.gradsim`). On N processes TRL calls the reward function on each process's slice
of the batch: every rank keeps its own ledger, and the main process gathers and writes them all.

Rollouts are sampled by :mod:`harness.data.sampling` (``objective.sampler: keyed``), so the same seed gives the same
rollouts on any number of processes.
"""

from __future__ import annotations

import contextlib
import csv
import json
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer

from harness.core import dist
from harness.data.rewards import REWARDS, Rollout, Settings
from harness.train.objectives import register
from harness.train.objectives.common import callbacks, trainer_args

if TYPE_CHECKING:
    from harness.data.tasks import Task

# Correct rollouts kept per prompt: the gradient similarity differentiates up to passrate.grad_sim.max_rollouts
# (default 4) of them; the first ones in training order, so the file stays small (prompts x 4 x completion length).
KEEP_CORRECT = 4


class Ledger:
    """Rollouts and correct rollouts per (step, prompt id), and the first ``keep`` correct rollouts per prompt."""

    def __init__(self, keep: int = KEEP_CORRECT) -> None:
        self.counts: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0])
        self.keep = keep
        self.correct: dict[str, list[dict]] = defaultdict(list)
        self.seen = 0  # rollouts scored by this process: their order within a step

    def add(self, step: int, pid: str, correct: bool, ids: list[int] | None = None, text: str | None = None) -> None:
        c = self.counts[(step, pid)]
        c[0] += 1
        c[1] += int(correct)
        self.seen += 1
        if correct and ids is not None and len(self.correct[pid]) < self.keep:
            self.correct[pid].append({"prompt_id": pid, "step": step, "ids": [int(i) for i in ids], "text": text,
                                      "_order": (step, dist.rank(), self.seen)})

    def merge(self, parts: list[Ledger]) -> Ledger:
        """One ledger of every process's: counts summed; kept rollouts in the global batch's order (within a step,
        rank by rank: TRL hands each process a contiguous slice), the first ``keep`` per prompt, as one process
        would have kept them."""
        out = Ledger(self.keep)
        for part in parts:
            for key, (n, k) in part.counts.items():
                out.counts[key][0] += n
                out.counts[key][1] += k
            for pid, rows in part.correct.items():
                out.correct[pid].extend(rows)
        for pid, rows in out.correct.items():
            out.correct[pid] = sorted(rows, key=lambda r: r["_order"])[: self.keep]
        return out

    def gathered(self) -> Ledger | None:
        """Every process's ledger merged, on the main process (None elsewhere). A collective."""
        self.counts = dict(self.counts)  # picklable (no lambda default)
        parts = dist.gather(self)
        self.counts = defaultdict(lambda: [0, 0], self.counts)
        return self.merge(parts) if parts is not None else None

    def write(self, path: Path) -> None:
        """``ledger.csv`` at ``path`` and ``correct_rollouts.jsonl`` beside it."""
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["step", "prompt_id", "rollouts", "correct"])
            for (step, pid), (n, k) in sorted(self.counts.items()):
                w.writerow([step, pid, n, k])
        with (path.parent / "correct_rollouts.jsonl").open("w") as fh:
            for pid in sorted(self.correct):
                for r in self.correct[pid]:
                    fh.write(json.dumps({k: v for k, v in r.items() if k != "_order"}) + "\n")


def make_reward(task: Task, ledger: Ledger, reward: str = "verifier", settings: Settings | None = None
                ) -> Callable[..., list[float]]:
    """TRL's reward function: the verifier scores every rollout once (the ledger records its verdict), and the
    run is paid ``reward`` (:mod:`harness.data.rewards`; the verifier's own score by default). TRL logs the paid
    reward as ``rewards/<function name>/mean``: ``exact_answer`` for the verifier, the reward's name otherwise."""
    pay = None if reward == "verifier" else REWARDS.get(reward)
    settings = settings or Settings()

    def exact_answer(prompts, completions, answer, prompt_id, completion_ids=None, trainer_state=None, **_):
        step = trainer_state.global_step if trainer_state is not None else 0
        scores = [task.score(c, a) for c, a in zip(completions, answer)]
        # TRL passes each completion's token ids, up to and including EOS (what the policy gradient acts on)
        ids = completion_ids if completion_ids is not None else [None] * len(scores)
        for pid, s, cid, text in zip(prompt_id, scores, ids, completions):
            ledger.add(step, pid, s > 0, cid, text if isinstance(text, str) else None)
        if pay is None:
            return scores
        seen: Counter = Counter()
        paid = []
        for text, gold, pid, s in zip(completions, answer, prompt_id, scores):
            key = (pid, str(text))
            paid.append(pay(Rollout(text, gold, pid, step, seen[key], s > 0), settings))
            seen[key] += 1
        return paid

    if pay is not None:
        exact_answer.__name__ = reward
    return exact_answer


def rollout_args(cfg) -> dict:
    """GRPOConfig / RLOOConfig keywords both group-sampling trainers share (same names in TRL 1.16)."""
    return dict(
        # TRL counts completions, not prompts, in the batch size.
        # the config's batch is global (prompts per optimizer step over every process): per device, completions
        per_device_train_batch_size=dist.per_device(cfg.prompts_per_step * cfg.num_generations, cfg.get("grad_accum", 1)),
        num_generations=cfg.num_generations,
        max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature,
        beta=cfg.beta,
        use_vllm=cfg.get("use_vllm", False),
        vllm_mode=cfg.get("vllm_mode", "colocate"),
        log_completions=False,
    )


def train_with_ledger(trainer_cls, args, model, tokenizer, task, cfg, out_dir: Path, label: str):
    """Train with a TRL group-sampling trainer (GRPO, RLOO) whose reward is the task's scorer; writes
    ``ledger.csv`` and ``correct_rollouts.jsonl`` (every process's rollouts, on the main process; when training
    fails, what the main process saw) and returns the trainer."""
    ledger = Ledger(int(cfg.get("keep_correct", KEEP_CORRECT)))
    data = Dataset.from_list(task.rl_rows("train"))
    tokenizer.padding_side = "left"
    if cfg.get("sampler", "keyed") == "keyed" and not args.use_vllm:
        from harness.data.sampling import keyed_generate

        keyed_generate(model, args.seed)
    from harness.train import vllm_sync

    with vllm_sync.seeded_engine(args.seed) if args.use_vllm else contextlib.nullcontext():
        reward = make_reward(task, ledger, str(cfg.get("reward") or "verifier"),
                             Settings(int(args.seed), float(cfg.get("reward_rate", 0.5))))
        trainer = trainer_cls(model=model, reward_funcs=[reward], args=args,
                              train_dataset=data, processing_class=tokenizer,
                              callbacks=callbacks(cfg, task, tokenizer, out_dir, label))
    if args.use_vllm:
        vllm_sync.install(trainer)  # LoRA-family: merged weights out of place, the base stays exact
    try:
        trainer.train()
    except BaseException:
        if dist.is_main():
            ledger.write(out_dir / "ledger.csv")
        raise
    finally:
        from harness.data.sampling import plain_generate

        plain_generate(model)
    merged = ledger.gathered()
    if merged is not None:
        merged.write(out_dir / "ledger.csv")
    return trainer


@register("rlvr")
def train(model, tokenizer, task, cfg, lr: float, seed: int, out_dir: Path, device: str = "cpu",
          label: str = "rlvr"):
    """Train ``model`` in place with GRPO for ``cfg.steps`` steps; writes ``ledger.csv`` and
    ``correct_rollouts.jsonl``."""
    args = GRPOConfig(
        **trainer_args(cfg, out_dir, lr, seed, device),
        **rollout_args(cfg),
        loss_type=cfg.loss_type,
        scale_rewards=cfg.get("scale_rewards", "group"),
    )
    return train_with_ledger(GRPOTrainer, args, model, tokenizer, task, cfg, out_dir, label)
