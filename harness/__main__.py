"""One command for every stage: ``harness <command> ...`` (the console script) or ``python -m harness <command>``.

    harness train  [-m] key=value ...      # = python -m harness.run: train (a sweep with -m), measure, report
    harness analyze <run|sweep dir> | base=<ckpt> tuned=<ckpt> | pairs=<file> [key=value ...]
    harness report  <sweep dir>            # report.md, CSVs, PNGs, W&B
    harness claims  <sweep dir>            # the claims' verdicts
    harness bench   <name> [key=value ...] # speed, as ratios against a baseline in the same run

``python -m harness.<module>`` keeps working, and ``python -m harness key=value ...`` (no command) still trains.
"""

from __future__ import annotations

import importlib
import sys

#: command -> (module, function): the stage's own entry point, which reads ``sys.argv[1:]``.
COMMANDS = {"train": ("harness.launch.run", "cli"), "analyze": ("harness.launch.analyze", "main"),
            "report": ("harness.report", "main"), "claims": ("harness.claims.__main__", "main"),
            "bench": ("harness.launch.bench", "main")}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    if not argv or "=" in argv[0] or argv[0].startswith("-"):
        command, rest = "train", argv  # overrides (or Hydra's flags) alone: train, as `python -m harness` did
    elif argv[0] in COMMANDS:
        command, rest = argv[0], argv[1:]
    else:
        from harness.core.registry import bad_choice

        print(bad_choice("command", argv[0], list(COMMANDS)), file=sys.stderr)
        return 2
    module, function = COMMANDS[command]
    sys.argv = [f"harness {command}", *rest]  # each stage reads its own arguments from sys.argv
    result = getattr(importlib.import_module(module), function)()
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    raise SystemExit(main())
