"""``python -m harness.claims <sweep dir | pair-study dir>``: judge every claim on a sweep (or, group by group,
on the pairs of a pair study), print the verdicts, write ``claims.csv``, ``claims.md`` and
``claims_forest.png`` into the dir. A bad dir: one line, exit 2.

``python -m harness.claims --list``: every registered claim, in table order, with its source."""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--list"]:
        return list_claims()
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: python -m harness.claims <sweep dir> | --list", file=sys.stderr)
        return 2
    from harness.analysis.sweep import load_sweep

    path = Path(argv[0])
    sweep = load_sweep(path) if path.is_dir() else None
    if sweep is None or not sweep.runs:
        print(f"error: {str(path)!r} is not a sweep dir (no */.hydra/config.yaml)", file=sys.stderr)
        return 2
    from harness.claims.table import write_claims

    df, _, _ = write_claims(sweep)
    for _, r in df.iterrows():  # a pair study: one row per claim and group
        group = f"{r['group']} " if "group" in df else ""
        print(f"{group}{r['id']:<7} {r['verdict']:<27} {r['estimate [95% CI]']}")
    print(f"[harness] claims: {sweep.path / 'claims.md'}")
    return 0


def list_claims() -> int:
    """Print id, claim and source of every registered claim (no sweep needed)."""
    from harness.claims.base import ordered

    claims = ordered()
    for c in claims:
        print(f"{c.id:<7} {c.claim}  [{c.source}]")
    print(f"[harness] {len(claims)} claims")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
