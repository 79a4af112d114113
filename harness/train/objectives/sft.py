"""SFT with TRL's SFTTrainer on prompt-completion rows: the loss covers the completion only."""

from __future__ import annotations

from pathlib import Path

from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from harness.core import dist
from harness.train.objectives import register
from harness.train.objectives.common import callbacks, trainer_args


@register("sft")
def train(model, tokenizer, task, cfg, lr: float, seed: int, out_dir: Path, device: str = "cpu",
          label: str = "sft", rows: list[dict] | None = None):
    """Train ``model`` in place for ``cfg.steps`` steps on the task's train split (or ``rows``)."""
    args = SFTConfig(
        **trainer_args(cfg, out_dir, lr, seed, device),
        per_device_train_batch_size=dist.per_device(cfg.batch_size, cfg.get("grad_accum", 1)),  # the config's is global
        max_length=cfg.get("max_seq_len", 256),
        completion_only_loss=True,
        packing=False,
    )
    data = Dataset.from_list(rows if rows is not None else task.sft_rows("train"))
    tokenizer.padding_side = "right"  # training pads on the right; generation (eval) on the left
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                         callbacks=callbacks(cfg, task, tokenizer, out_dir, label))
    trainer.train()
    tokenizer.padding_side = "left"
    return trainer
