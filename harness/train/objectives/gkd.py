"""On-policy distillation with TRL's GKD trainer (``trl.experimental.gkd``): the student samples, the teacher
scores every token of the student's own completions, and the loss is TRL's generalized Jensen-Shannon divergence
between their next-token distributions (Agarwal et al., 2024). With ``lmbda: 1`` every batch is the student's own
samples (fully on-policy) and ``jsd_beta: 1`` makes the divergence the reverse KL(student ‖ teacher), the setting
*On the Geometry of On-Policy Distillation* (arXiv 2606.07082) studies: the arm of claim OD1.

``objective.teacher`` is any checkpoint that shares the student's vocabulary:

- a run dir trained with ``save_model=true`` (its ``model/``), or any local checkpoint dir;
- ``model:<name>``: a model config of ``conf/model`` (e.g. ``model:smollm2-135m``), warm-up included;
- a hub id ``org/name`` (offline by default: it must be in the Hugging Face cache, or set ``HF_HUB_OFFLINE=0``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from datasets import Dataset
from omegaconf import DictConfig, OmegaConf

from harness.core import dist
from harness.core.registry import BadValue
from harness.train.objectives import register
from harness.train.objectives.common import callbacks, trainer_args

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from harness.data.tasks import Task

TEACHERS = ("a run dir saved with save_model=true, a checkpoint dir, model:<name> of conf/model, "
            "or a hub id org/name")


def teacher_config(spec: object) -> DictConfig:
    """The model config of ``objective.teacher`` (see the module doc); :class:`BadValue` naming the key when it
    names nothing loadable. Cheap: nothing is loaded."""
    from harness import CONF_DIR
    from harness.data.sources import SOURCES, is_checkpoint

    if not isinstance(spec, str) or not spec:
        raise BadValue("objective.teacher", spec, TEACHERS)
    if spec.startswith("model:"):
        name = spec.removeprefix("model:")
        names = sorted(p.stem for p in (Path(CONF_DIR) / "model").glob("*.yaml"))
        if name not in names:
            raise BadValue("objective.teacher", spec, f"model:<name> with a name of conf/model: {', '.join(names)}")
        cfg = OmegaConf.load(Path(CONF_DIR) / "model" / f"{name}.yaml")
    else:
        path = Path(spec).expanduser()
        if path.is_dir() and not is_checkpoint(path):
            if is_checkpoint(path / "model"):
                path = path / "model"
            elif (path / "run.json").exists():
                raise BadValue("objective.teacher", spec, f"{TEACHERS}: this run dir has no model/ (train it "
                                                          "with save_model=true)")
        cfg = OmegaConf.create({"name": "teacher", "source": "hf", "dtype": "float32", "device": "auto",
                                "name_or_path": str(path) if path.exists() else spec})
    try:
        SOURCES.get(cfg.source).check(cfg)
    except BadValue as exc:
        raise BadValue("objective.teacher", spec, exc.valid) from None
    return cfg


def load_teacher(spec: str, device: str) -> torch.nn.Module:
    """The teacher model in eval mode (its warm-up, if its config has one, built or read from the cache)."""
    from harness.data.models import load_model
    from harness.train.warmup import resolve_base

    cfg = teacher_config(spec)
    with dist.main_first("teacher"):
        path = resolve_base(cfg)
    model, _ = load_model(path, cfg.get("dtype", "float32"), device)
    return model.eval()


class PromptCompletionCollator:
    """The batch GKD's trainer reads: prompt + completion right-padded (``input_ids``, ``attention_mask``,
    ``labels`` with -100 on the prompt and padding) and the prompts alone left-padded (``prompts``,
    ``prompt_attention_mask``, what the student samples from). TRL's own GKD collator
    (``DataCollatorForChatML``) needs chat messages and a chat template, which a base model's plain prompts lack."""

    def __init__(self, tokenizer, max_length: int):
        self.tok, self.max_length = tokenizer, max_length

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        pad = self.tok.pad_token_id
        prompts = [r["prompt_ids"] for r in rows]
        seqs = [(r["prompt_ids"] + r["completion_ids"])[: self.max_length] for r in rows]
        width, pwidth = max(map(len, seqs)), max(map(len, prompts))
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        labels = torch.full_like(ids, -100)
        p_ids = torch.full((len(rows), pwidth), pad, dtype=torch.long)
        p_mask = torch.zeros_like(p_ids)
        for i, (p, s) in enumerate(zip(prompts, seqs)):
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
            labels[i, len(p) : len(s)] = torch.tensor(s[len(p) :], dtype=torch.long)
            p_ids[i, pwidth - len(p) :] = torch.tensor(p)
            p_mask[i, pwidth - len(p) :] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels, "prompts": p_ids,
                "prompt_attention_mask": p_mask}


def rows(task: Task, tokenizer: PreTrainedTokenizerBase) -> list[dict]:
    """The train split pre-tokenized: prompt ids, and the gold target + EOS (read only when ``lmbda`` < 1)."""
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    return [{"prompt_ids": tokenizer(e.prompt)["input_ids"],
             "completion_ids": tokenizer(e.target, add_special_tokens=False)["input_ids"] + eos}
            for e in task.train]


@register("gkd")
def train(model, tokenizer, task, cfg, lr: float, seed: int, out_dir: Path, device: str = "cpu",
          label: str = "gkd"):
    """Distil ``objective.teacher`` into ``model`` in place for ``cfg.steps`` steps."""
    from trl.experimental.gkd import GKDConfig, GKDTrainer

    args = GKDConfig(
        **trainer_args(cfg, out_dir, lr, seed, device),
        per_device_train_batch_size=dist.per_device(cfg.batch_size, cfg.get("grad_accum", 1)),  # global, as sft
        max_length=cfg.get("max_seq_len", 128),
        lmbda=float(cfg.lmbda),
        beta=float(cfg.jsd_beta),
        temperature=float(cfg.temperature),
        max_new_tokens=int(cfg.max_completion_length),
        seq_kd=bool(cfg.get("seq_kd", False)),
        remove_unused_columns=False,
    )
    teacher = load_teacher(str(cfg.teacher), device)
    tokenizer.padding_side = "left"
    trainer = GKDTrainer(model=model, teacher_model=teacher, args=args,
                         data_collator=PromptCompletionCollator(tokenizer, args.max_length),
                         train_dataset=Dataset.from_list(rows(task, tokenizer)), processing_class=tokenizer,
                         callbacks=callbacks(cfg, task, tokenizer, out_dir, label))
    trainer.train()
    return trainer
