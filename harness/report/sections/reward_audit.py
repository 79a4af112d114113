"""Reward audit: what the RLVR reward paid for, read from each RL run's kept correct rollouts.

A hole in the verifier is found by the policy at scale and then shows as rewarded completions that do not look
like answers. From ``correct_rollouts.jsonl`` (the first few rewarded completions of every prompt, in training
order) this section gives per run the share of rewarded completions whose final answer is not a plain number
(words, units, an expression, a hedge the scorer let through) and the share whose final answer repeats the
prompt's operands (``50 + 83 = 133``, or a restated question), each with examples, and how many of them the
current scorer would not pay (they were paid by an older one). Prompts are rebuilt from the run's config.
"""

from __future__ import annotations

import pandas as pd

from harness.data.tasks.scoring import extract, numbers_in, read_number, score
from harness.report.base import Context, markdown, section

EXAMPLES = 5  # listed per kind of finding and sweep
SHOW = 80  # characters of a completion shown


def audit_rollouts(kept: dict[str, list[dict]], examples: dict) -> pd.DataFrame:
    """One row per kept rollout: prompt id, step, text, the final answer the scorer reads, whether it is a plain
    number, the prompt's operands it repeats, and whether the current scorer pays it (None: prompt unknown)."""
    rows = []
    for pid, rollouts in kept.items():
        ex = examples.get(pid)
        prompt_numbers = set(numbers_in(ex.prompt, standalone=False)) if ex is not None else set()
        gold = read_number(str(ex.answer)) if ex is not None else None
        for r in rollouts:
            text = r.get("text")
            _, answer = extract(text)
            repeats = sorted({v for v in numbers_in(answer, standalone=False) if v in prompt_numbers and v != gold})
            rows.append({"prompt_id": pid, "step": r.get("step"), "text": text, "answer": answer,
                         "plain": read_number(answer.rstrip(".!;, ")) is not None,
                         "repeats": ", ".join(str(v) for v in repeats),
                         "paid_now": None if ex is None else bool(score(text, ex.answer))})
    return pd.DataFrame(rows, columns=["prompt_id", "step", "text", "answer", "plain", "repeats", "paid_now"])


def _share(k: int, n: int) -> str:
    return f"{k / n:.2f} ({k}/{n})" if n else "–"


def _example(run: str, row: dict, prompt: str | None) -> str:
    text = repr(str(row["text"])[:SHOW])
    where = f"{run}, prompt {row['prompt_id']}" + (f" ({prompt.splitlines()[0][:60]!r})" if prompt else "")
    return f"- {where}: {text}"


@section(45, "reward_audit", "Reward audit — what the RLVR reward paid for")
def render(ctx: Context) -> str | None:
    table, flagged = [], []
    found: dict[str, list[str]] = {"not a plain number": [], "repeats the prompt's operands": [],
                                   "not paid by the current scorer": []}
    for row in ctx.sweep.done.to_dict("records"):
        run = ctx.sweep.run(row["run"])
        kept = run.correct_rollouts()
        if not kept:
            continue
        examples = run.examples() or {}
        audit = audit_rollouts(kept, examples)
        n = len(audit)
        not_plain = audit[~audit["plain"]]
        repeats = audit[audit["repeats"] != ""]
        unpaid = audit[audit["paid_now"] == False]  # noqa: E712 (None: the prompt could not be rebuilt)
        table.append({"run": row["run"], "condition": row["condition"], "seed": row["seed"], "kept": n,
                      "not a plain number": _share(len(not_plain), n),
                      "repeats operands": _share(len(repeats), n),
                      "not paid now": _share(len(unpaid), n),
                      "prompts unknown": int(audit["paid_now"].isna().sum())})
        for kind, part in zip(found, (not_plain, repeats, unpaid)):
            for r in part.to_dict("records"):
                flagged.append({"run": row["run"], "finding": kind, **r})
                if len(found[kind]) < EXAMPLES:
                    ex = examples.get(r["prompt_id"])
                    found[kind].append(_example(row["run"], r, ex.prompt if ex is not None else None))
    if not table:
        return None
    ctx.tables["reward_audit"] = pd.DataFrame(table)
    if flagged:
        ctx.tables["reward_audit_flagged"] = pd.DataFrame(flagged)
    lines = ["Kept correct rollouts of every RL run (`correct_rollouts.jsonl`: the first rewarded completions of each "
             "prompt), read with the current scorer: a final answer that is not a plain number, or that repeats "
             "the prompt's operands, is how a verifier hole shows once a policy exploits it.", "",
             markdown(pd.DataFrame(table))]
    for kind, items in found.items():
        lines += ["", f"**{kind[0].upper() + kind[1:]}** — " + (f"{len(items)} example(s):" if items else "none.")]
        lines += items
    return "\n".join(lines)
