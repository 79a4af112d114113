"""Verifiable tasks: prompts with gold answers, a fixed-seed train/test split, stable prompt ids, a scorer.

Two kinds, chosen by ``task.kind``:
- ``reasoning_gym``: a procedural generator from reasoning-gym, as a weighted mix of difficulty components;
- ``jsonl``: a user's file with ``prompt``, ``answer`` and optional ``solution`` (and optional ``id``).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from harness.tasks.scoring import extract_answer, score

KINDS = ("reasoning_gym", "jsonl")

__all__ = ["Example", "Task", "build_task", "extract_answer", "score", "KINDS"]


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


def _reasoning_gym(cfg: DictConfig) -> list[Example]:
    import reasoning_gym

    template = cfg.prompt_template
    common = OmegaConf.to_container(cfg.get("common", {}), resolve=True)
    total = cfg.n_train + cfg.n_test
    weights = [float(c.get("weight", 1.0)) for c in cfg.mix]
    seen: set[str] = set()
    out: list[Example] = []
    for i, comp in enumerate(cfg.mix):
        comp = OmegaConf.to_container(comp, resolve=True)
        group = comp.pop("group", f"c{i}")
        comp.pop("weight", None)
        # Cumulative targets: rounding never loses a prompt, and a component with fewer distinct prompts
        # than its share (1-digit sums) passes the rest on to the next.
        want = round(total * sum(weights[: i + 1]) / sum(weights)) - len(out)
        # Oversample: duplicates are dropped.
        ds = reasoning_gym.create_dataset(cfg.dataset, size=4 * want + 16, seed=cfg.seed + i, **common, **comp)
        got = 0
        for item in ds:
            if got >= want:
                break
            prompt = template.format(question=item["question"])
            if prompt in seen:
                continue
            seen.add(prompt)
            answer = str(item["answer"])
            out.append(Example(prompt_id(cfg.name, prompt), prompt, answer, " " + answer, group))
            got += 1
    return out


def _jsonl(cfg: DictConfig) -> list[Example]:
    path = Path(cfg.path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"task.path={path} does not exist (a JSONL file with prompt/answer per line)")
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        missing = {"prompt", "answer"} - row.keys()
        if missing:
            raise ValueError(f"{path}:{n} lacks {sorted(missing)}; each line needs prompt and answer")
        prompt = cfg.prompt_template.format(question=row["prompt"])
        answer = str(row["answer"])
        target = " " + str(row.get("solution") or answer)
        out.append(Example(str(row.get("id") or prompt_id(cfg.name, prompt)), prompt, answer, target))
    return out


def build_task(cfg: DictConfig) -> Task:
    """Build the task a ``conf/task/*.yaml`` describes, with its fixed-seed split."""
    if cfg.kind == "reasoning_gym":
        items = _reasoning_gym(cfg)
    elif cfg.kind == "jsonl":
        items = _jsonl(cfg)
    else:
        raise ValueError(f"unknown task kind {cfg.kind!r}; valid: {', '.join(KINDS)}")
    train, test = _split(items, cfg.n_train, cfg.n_test, cfg.seed)
    return Task(cfg.name, train, test)
