"""The rollout ledger of an RLVR run (``ledger.csv``: step, prompt_id, rollouts, correct), aggregated, and the
correct rollouts kept beside it (``correct_rollouts.jsonl``: prompt_id, step, token ids, text; the first few per
prompt).

Both are written by the GRPO reward function (harness/train/objectives/rlvr.py) from its own arguments. Their
``step`` is the trainer's global step when the rollouts were scored, i.e. *before* the optimizer step: the
rollouts of ledger step s are those TRL logs as step s + 1 in ``train_log.jsonl``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path


@dataclass
class PromptLedger:
    rollouts: int = 0          # rollouts of this prompt scored during training
    correct: int = 0           # of them correct (score > 0)
    visits: int = 0            # distinct steps in which the prompt was sampled
    first_correct_step: int = -1  # ledger step of the first correct rollout (-1: none)


def read_ledger(path: Path) -> list[tuple[int, str, int, int]]:
    """Rows (step, prompt_id, rollouts, correct); empty when the file is missing (SFT runs)."""
    if not path.exists():
        return []
    with path.open() as fh:
        return [(int(r["step"]), r["prompt_id"], int(r["rollouts"]), int(r["correct"])) for r in csv.DictReader(fh)]


def per_prompt(rows: list[tuple[int, str, int, int]]) -> dict[str, PromptLedger]:
    out: dict[str, PromptLedger] = {}
    for step, pid, n, k in sorted(rows):
        e = out.setdefault(pid, PromptLedger())
        e.rollouts += n
        e.correct += k
        e.visits += 1
        if k > 0 and e.first_correct_step < 0:
            e.first_correct_step = step
    return out


def per_step(rows: list[tuple[int, str, int, int]]) -> dict[int, tuple[int, int]]:
    """Ledger step -> (rollouts, correct) summed over prompts."""
    out: dict[int, list[int]] = {}
    for step, _, n, k in rows:
        t = out.setdefault(step, [0, 0])
        t[0] += n
        t[1] += k
    return {s: (t[0], t[1]) for s, t in sorted(out.items())}


def logged_rewards(train_log: Path, key: str = "reward") -> dict[int, float]:
    """Logged step -> the mean reward TRL logged at that step."""
    out = {}
    for line in train_log.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            if key in row:
                out[int(row["step"])] = float(row[key])
    return out


def check_against_log(job_dir: Path, key: str = "reward") -> list[tuple[int, int, int, float]]:
    """Per step: (logged step, ledger rollouts, ledger correct, TRL's logged mean reward). With 0/1 rewards,
    logging every step and one generation per optimizer step, correct == reward * rollouts."""
    steps = per_step(read_ledger(job_dir / "ledger.csv"))
    logged = logged_rewards(job_dir / "train_log.jsonl", key)
    return [(s + 1, n, k, logged.get(s + 1, float("nan"))) for s, (n, k) in steps.items()]


def read_correct_rollouts(path: Path) -> dict[str, list[dict]]:
    """``correct_rollouts.jsonl`` -> {prompt id: [{"step", "ids", "text"}, ...]} in training order; empty when the
    file is missing (SFT runs, runs from before the file existed)."""
    out: dict[str, list[dict]] = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            out.setdefault(r["prompt_id"], []).append(r)
    for rows in out.values():
        rows.sort(key=lambda r: r.get("step", 0))
    return out
