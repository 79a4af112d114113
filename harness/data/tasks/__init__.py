"""Verifiable tasks: prompts with gold answers, a fixed-seed train/test split, stable prompt ids, a scorer.

Task kinds are plug-ins chosen by ``task.kind`` (one module in this package registering a :class:`TaskKind`
plus one ``conf/task/<name>.yaml``; modules are discovered automatically):
- ``reasoning_gym``: a procedural generator from reasoning-gym, as a weighted mix of difficulty components;
- ``jsonl``: a user's file with ``prompt``, ``answer`` and optional ``solution`` (and optional ``id``).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from omegaconf import DictConfig

from harness.core.registry import Registry
from harness.data.tasks.scoring import extract_answer, score

__all__ = ["Augmented", "Example", "Task", "TaskKind", "KINDS", "register", "build_task", "prompt_id", "extract_answer",
           "score"]


@dataclass(frozen=True)
class Example:
    """One prompt. ``target`` is what SFT trains on: the gold answer, or the worked solution when given."""

    id: str
    prompt: str
    answer: str
    target: str
    group: str = ""  # difficulty component (e.g. ``d3``), for per-group tables


@dataclass
class Task:
    name: str
    train: list[Example]
    test: list[Example]

    def score(self, completion: str, gold: str) -> float:
        return score(completion, gold)

    def sft_rows(self, split: str = "train") -> list[dict]:
        """Prompt-completion rows for TRL's SFTTrainer (completion-only loss)."""
        return [{"prompt": e.prompt, "completion": e.target} for e in getattr(self, split)]

    def rl_rows(self, split: str = "train") -> list[dict]:
        """Rows for TRL's GRPOTrainer; extra columns reach the reward function as keyword arguments."""
        return [{"prompt": e.prompt, "answer": e.answer, "prompt_id": e.id} for e in getattr(self, split)]


@dataclass(frozen=True)
class Augmented:
    """An augmentation of a prompt (*The Unlearnability Phenomenon in RLVR*, §5): a rephrasing of the same problem
    or one self-contained subproblem of it, with its own gold answer."""

    kind: str  # "rephrase" | "decompose"
    prompt: str
    answer: str
    target: str


class TaskKind:
    """A task kind: the examples a ``conf/task`` YAML describes. Subclasses implement :meth:`examples` and,
    when the kind has settings of its own that can be wrong, :meth:`check`; a kind that can rephrase or
    decompose its own problems implements :meth:`augmentations`."""

    @classmethod
    def examples(cls, cfg: DictConfig) -> list[Example]:
        """Every distinct prompt the config describes (at least ``n_train + n_test``), in a fixed order."""
        raise NotImplementedError

    @classmethod
    def augmentations(cls, cfg: DictConfig, examples: list[Example]) -> dict[str, list[Augmented]]:
        """Per example id, its augmentations (none by default: a user's file has no generator to ask)."""
        return {}

    @classmethod
    def check(cls, cfg: DictConfig, key: str = "task") -> None:
        """Raise :class:`harness.core.registry.BadValue` for a bad kind-specific setting (``key``: where ``cfg`` sits
        in the config, for the message); must be cheap (it runs before anything loads) and load no model."""


KINDS: Registry[type[TaskKind]] = Registry("task kind", __name__, skip=("scoring",))
register = KINDS.register


def prompt_id(task: str, prompt: str) -> str:
    """Stable id from the prompt text: the same prompt keeps its id across configs and seeds."""
    return f"{task}-{hashlib.sha1(prompt.encode()).hexdigest()[:10]}"


def _split(items: list[Example], n_train: int, n_test: int, seed: int) -> tuple[list[Example], list[Example]]:
    rng = random.Random(seed)
    items = list(items)
    rng.shuffle(items)
    if len(items) < n_train + n_test:
        raise ValueError(f"task has {len(items)} distinct prompts, fewer than n_train+n_test={n_train + n_test}")
    return items[:n_train], items[n_train : n_train + n_test]


def build_task(cfg: DictConfig) -> Task:
    """Build the task a ``conf/task/*.yaml`` describes, with its fixed-seed split."""
    items = KINDS.get(cfg.kind).examples(cfg)
    train, test = _split(items, cfg.n_train, cfg.n_test, cfg.seed)
    return Task(cfg.name, train, test)
