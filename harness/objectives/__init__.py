"""Training objectives: ``sft`` (TRL SFTTrainer) and ``rlvr`` (TRL GRPOTrainer)."""

from __future__ import annotations

OBJECTIVES = ("sft", "rlvr")


def train(name: str, **kwargs):
    """Run objective ``name``; see :func:`harness.objectives.sft.train` / :func:`harness.objectives.rlvr.train`."""
    if name == "sft":
        from harness.objectives.sft import train as fn
    elif name == "rlvr":
        from harness.objectives.rlvr import train as fn
    else:
        raise ValueError(f"unknown objective {name!r}; valid: {', '.join(OBJECTIVES)}")
    return fn(**kwargs)
