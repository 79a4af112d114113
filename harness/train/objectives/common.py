"""What the objectives share: TRL argument defaults for CPU/GPU and any number of processes, and the callbacks
(per-step log, held-out accuracy, and the run's own, e.g. fault injection).

On N processes every rank trains and runs these callbacks; only the main process writes (``dist.is_main``).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from harness.core import dist

# Callbacks the run adds to whatever trainer the objective builds (fault injection): set by :func:`run_callbacks`
# around the objective's call, so the objective plug-in contract stays ``train(model, tokenizer, task, ...)``.
_RUN_CALLBACKS: contextvars.ContextVar[tuple[TrainerCallback, ...]] = contextvars.ContextVar("run_callbacks",
                                                                                             default=())


@contextlib.contextmanager
def run_callbacks(*extra: TrainerCallback) -> Iterator[None]:
    """Add ``extra`` to the callbacks of every trainer built inside the block."""
    token = _RUN_CALLBACKS.set(_RUN_CALLBACKS.get() + extra)
    try:
        yield
    finally:
        _RUN_CALLBACKS.reset(token)


def mixed_precision(cfg, device: str) -> str:
    """The run's mixed precision, from its config alone: ``bf16`` with ``bf16_autocast`` on an accelerator,
    else ``no``."""
    return "bf16" if bool(cfg.get("bf16_autocast", False)) and device != "cpu" else "no"


class NonFiniteLoss(FloatingPointError):
    """Raised from the log callback so the run is marked failed with the reason; the sweep goes on."""


def trainer_args(cfg, out_dir: Path, lr: float, seed: int, device: str) -> dict[str, Any]:
    """Keyword arguments shared by SFTConfig and GRPOConfig."""
    mixed = mixed_precision(cfg, device)
    # Set explicitly: with bf16/fp16 off, TrainingArguments and accelerate fall back to ACCELERATE_MIXED_PRECISION,
    # which a default `accelerate config` sets, silently training in bf16 (issue 17: ΔW off by 4.6 %).
    os.environ["ACCELERATE_MIXED_PRECISION"] = mixed
    return dict(
        output_dir=str(out_dir / "trainer"),
        max_steps=cfg.steps,
        learning_rate=lr,
        lr_scheduler_type=cfg.get("lr_scheduler", "constant"),
        warmup_steps=cfg.get("warmup_steps", 0),
        weight_decay=0.0,  # sparse masks rely on it: decay would move unmasked entries
        max_grad_norm=cfg.get("max_grad_norm", 1.0),
        gradient_accumulation_steps=cfg.get("grad_accum", 1),
        logging_steps=1,
        save_strategy="no",
        report_to="none",  # logged by LogCallback into train_log.jsonl and the job's own W&B run
        seed=seed,
        data_seed=seed,
        bf16=mixed == "bf16",
        use_cpu=device == "cpu",
        dataloader_num_workers=0,
        disable_tqdm=False,
        gradient_checkpointing=bool(cfg.get("gradient_checkpointing", False)),  # GPU users: true for big models
    )


class LogCallback(TrainerCallback):
    """One JSON line per step in ``train_log.jsonl``, the same metrics to W&B, a readable line on stdout, and a
    failure on a non-finite loss."""

    KEYS = ("loss", "reward", "reward_std", "kl", "frac_reward_zero_std", "learning_rate", "grad_norm")

    def __init__(self, path: Path, label: str = ""):
        self.path = path
        self.label = label
        self.t0 = time.time()
        if dist.is_main():
            path.write_text("")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "train_runtime" in logs:
            return
        for key in ("loss", "grad_norm"):  # every rank stops (the logged values are the same on every rank)
            if key in logs and isinstance(logs[key], int | float) and not math.isfinite(logs[key]):
                raise NonFiniteLoss(f"non-finite {key} {logs[key]} at step {state.global_step}")
        if not dist.is_main():
            return
        row = {"step": state.global_step, "time": round(time.time() - self.t0, 3)}
        row.update({k: float(v) for k, v in logs.items() if isinstance(v, int | float)})
        with self.path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        try:
            import wandb

            if wandb.run is not None:
                wandb.log({f"train/{k}": v for k, v in row.items() if k != "step"}, step=state.global_step)
        except ImportError:
            pass
        shown = " ".join(f"{k}={row[k]:.4g}" for k in self.KEYS if k in row)
        print(f"[{self.label}] step {state.global_step}/{state.max_steps} {shown}", flush=True)


class HeldoutCallback(TrainerCallback):
    """Held-out accuracy during training: greedy answers to the first ``n`` held-out prompts, scored by the task
    scorer, at the start and every ``every`` steps (and at the end), as ``heldout_acc`` rows in
    ``train_log.jsonl`` and on W&B — so a reader sees learning, not batch noise (issue 12). Off by default
    (``objective.heldout_every: 0``): 100 prompts cost a few seconds per point on a 135M model on CPU.

    On N processes every rank decodes the same prompts (under FSDP a forward pass is a collective, so every
    rank must make the same calls; greedy decoding makes them identical); the main process writes."""

    def __init__(self, path: Path, task, tokenizer, every: int, n: int, max_new_tokens: int = 8):
        self.path, self.tok, self.every = path, tokenizer, every
        self.examples = task.test[:n]
        self.task, self.max_new_tokens = task, max_new_tokens

    @torch.no_grad()
    def accuracy(self, model) -> float:
        was_training, side = model.training, self.tok.padding_side
        model.eval()
        self.tok.padding_side = "left"
        device = next(model.parameters()).device
        right = 0
        try:
            for i in range(0, len(self.examples), 32):
                chunk = self.examples[i : i + 32]
                enc = self.tok([e.prompt for e in chunk], return_tensors="pt", padding=True).to(device)
                out = model.generate(**enc, do_sample=False, max_new_tokens=self.max_new_tokens,
                                     pad_token_id=self.tok.pad_token_id)
                texts = self.tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
                right += sum(self.task.score(t, e.answer) for t, e in zip(texts, chunk))
        finally:
            self.tok.padding_side = side
            model.train(was_training)
        return right / max(1, len(self.examples))

    def _log(self, state, model) -> None:
        row = {"step": state.global_step, "heldout_acc": self.accuracy(model), "heldout_n": len(self.examples)}
        if not dist.is_main():
            return
        with self.path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(f"[held-out] step {state.global_step}: accuracy {row['heldout_acc']:.3f} "
              f"({len(self.examples)} prompts)", flush=True)
        try:
            import wandb

            if wandb.run is not None:
                wandb.log({"train/heldout_acc": row["heldout_acc"]}, step=state.global_step)
        except ImportError:
            pass

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._log(state, model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every == 0 or state.global_step == state.max_steps:
            self._log(state, model)


def callbacks(cfg, task, tokenizer, out_dir: Path, label: str) -> list[TrainerCallback]:
    """The callbacks every objective passes to its trainer: the step log, held-out accuracy if asked, and the
    run's own (:func:`run_callbacks`)."""
    out: list[TrainerCallback] = [LogCallback(out_dir / "train_log.jsonl", label), *_RUN_CALLBACKS.get()]
    every = int(cfg.get("heldout_every") or 0)
    if every > 0 and task.test:
        out.append(HeldoutCallback(out_dir / "train_log.jsonl", task, tokenizer, every,
                                   int(cfg.get("heldout_n") or 100)))
    return out


def free_memory() -> None:
    """Collect the finished job's objects and return cached GPU memory before the next job."""
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
