"""Training objectives, registered by name: ``sft`` (TRL SFTTrainer), ``rlvr`` (TRL GRPOTrainer), ...

A new objective is one module in this package whose training function is decorated with
``@register("<name>")`` plus one ``conf/objective/<name>.yaml`` (``name: <name>``); modules here are
discovered automatically. The function's signature is that of :func:`harness.train.objectives.sft.train`:
``train(model, tokenizer, task, cfg, lr, seed, out_dir, device, label) -> transformers.Trainer``; it trains
``model`` in place for ``cfg.steps`` steps and returns the trainer (its ``state.global_step`` is recorded).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.core.registry import Registry

OBJECTIVES: Registry[Callable[..., Any]] = Registry("objective", __name__, skip=("common",))
register = OBJECTIVES.register


def available() -> list[str]:
    return OBJECTIVES.names()


def train(name: str, **kwargs: Any) -> Any:
    """Run the objective registered as ``name`` (see the module docstring for the keyword arguments)."""
    return OBJECTIVES.get(name)(**kwargs)
