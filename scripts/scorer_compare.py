"""The scorer on real completions: which final-answer rule decides each, what another last rule would change,
and every score that differs from an older scorer's (a git ref's ``harness/data/tasks/scoring.py``).

    python scripts/scorer_compare.py tests/fixtures/smollm2_rollouts.jsonl outputs/demo [--old-ref 8a01f30]

Inputs: JSONL files of ``text``/``answer`` rows (``scripts/sample_completions.py``) and sweep or run dirs (their
lm-eval samples and kept correct rollouts, gold from the rebuilt task). Prints markdown tables (docs/scoring.md
and results/reward_integrity.md quote them).
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def old_scorer(ref: str) -> types.ModuleType:
    """``harness/data/tasks/scoring.py`` as it was at ``ref`` (it imports nothing from the harness)."""
    src = subprocess.run(["git", "show", f"{ref}:harness/data/tasks/scoring.py"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    mod = types.ModuleType(f"scoring_at_{ref}")
    exec(compile(src, f"{ref}:harness/data/tasks/scoring.py", "exec"), mod.__dict__)  # noqa: S102
    return mod


def sources(paths: list[Path]) -> list[tuple[str, object, object]]:
    """(source, completion, gold) of every input."""
    import json

    from harness.analysis.sweep import run_dirs

    out = []
    for path in paths:
        if path.is_file():
            for line in path.read_text().splitlines():
                if line.strip():
                    r = json.loads(line)
                    out.append((f"{path.name}:{r.get('task', '')}", r.get("text", r.get("completion")),
                                r.get("answer", r.get("target"))))
            continue
        for run in run_dirs(path):
            label = run.identity("adapter")
            out += [(f"eval samples ({label})", r.get("completion"), r.get("target")) for r in run.eval_samples()]
            examples = run.examples() or {}
            out += [(f"kept rollouts ({label})", r.get("text"), examples[pid].answer)
                    for pid, rs in run.correct_rollouts().items() if pid in examples for r in rs]
    return out


def last_number_line(text: str) -> str:
    """The spec's alternative last rule: the last line holding a number."""
    from harness.data.tasks.scoring import numbers_in

    for line in reversed(text.splitlines()):
        if numbers_in(line, standalone=False):
            return line.strip()
    return ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+", type=Path)
    ap.add_argument("--old-ref", default="8a01f30", help="git ref of the older scorer (default: the last commit "
                    "before issue 18's scorer)")
    ap.add_argument("--examples", type=int, default=4)
    args = ap.parse_args()

    from harness.data.tasks.scoring import answer_number, extract, read_number, score

    old = old_scorer(args.old_ref)
    rows = sources(args.paths)
    by_source: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    changed: dict[tuple[str, float, float], list[str]] = collections.defaultdict(list)
    alt_changed: dict[tuple[float, float], list[str]] = collections.defaultdict(list)
    for src, text, gold in rows:
        rule, segment = extract(text)
        new = score(text, gold)
        before = float(old.score(text, gold))
        c = by_source[src]
        c["n"] += 1
        c[rule or "(no text)"] += 1
        c["new"] += new
        c["old"] += before
        if new != before:
            changed[(src, before, new)].append(repr(text))
        # the alternative last rule: only where the first-line rule decided
        if rule == "first line" and isinstance(gold, str) and read_number(gold) is not None:
            alt_segment = last_number_line(text)
            c["alt reads another line"] += bool(alt_segment) and alt_segment != segment
            alt = float(answer_number(alt_segment) == read_number(gold))
            if alt != new:
                c["alt differs"] += 1
                alt_changed[(new, alt)].append(repr(text))
    print("| source | completions | boxed | #### | answer is | first line | paid now | paid before | "
          "first line ≠ last line with a number | … and the score differs |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for src, c in sorted(by_source.items()):
        print(f"| {src} | {c['n']} | {c['boxed']} | {c['####']} | {c['answer is']} | {c['first line']} | "
              f"{int(c['new'])} | {int(c['old'])} | {c['alt reads another line']} | {c['alt differs']} |")
    print(f"\nScores that changed vs {args.old_ref} (before -> now):")
    for (src, before, new), texts in sorted(changed.items()):
        print(f"- {src}: {before:.0f} -> {new:.0f}: {len(texts)}, e.g. {', '.join(texts[: args.examples])}")
    if not changed:
        print("- none")
    print("\nWhere the first-line rule decided, the last line with a number would score (now -> alternative):")
    for (new, alt), texts in sorted(alt_changed.items()):
        print(f"- {new:.0f} -> {alt:.0f}: {len(texts)}, e.g. {', '.join(texts[: args.examples])}")
    if not alt_changed:
        print("- no difference")


if __name__ == "__main__":
    main()
