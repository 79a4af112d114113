"""Checks of command-line choices before Hydra composes, so a bad name gives one clear line and exit 2."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from harness.core.registry import bad_choice

# Folders of the config tree that are not groups a run selects from: Hydra's own settings, and the pair-study
# files `harness analyze pairs=<file>` reads.
NOT_GROUPS = ("hydra", "pairs")
OVERRIDE = re.compile(r"^[+~]?(?P<group>[a-z_]+)=(?P<value>[^()]*)$")


def groups(conf_dir: str | Path) -> list[str]:
    """The config groups a command line can choose from: every folder of the config tree but
    :data:`NOT_GROUPS` (so a new group, e.g. ``claims_arm``, is checked with no edit here)."""
    return sorted(p.name for p in Path(conf_dir).iterdir() if p.is_dir() and p.name not in NOT_GROUPS)


def choices(conf_dir: str | Path, group: str) -> list[str]:
    return sorted(p.stem for p in (Path(conf_dir) / group).glob("*.yaml"))


class ArgumentError(ValueError):
    """A bad command-line argument; the message is the one-line error (the caller prints it and exits 2)."""


OPTION = re.compile(r"^([A-Za-z_]\w*)=(.*)$")


def split_options(argv: list[str], options: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The one argument style of every ``harness`` command but ``train`` (which is Hydra's): positional targets
    and ``key=value`` options, ``options`` naming the valid keys. An unknown key is one line with did-you-mean.
    An argument that is an existing path is a target even when it looks like an option (a sweep's job dirs are
    named ``adapter=lora,seed=0``)."""
    targets, opts = [], {}
    for arg in argv:
        m = OPTION.match(arg)
        if not m or Path(arg).exists():
            targets.append(arg)
            continue
        key, value = m.groups()
        if key not in options:
            raise ArgumentError(bad_choice("option", key, list(options)))
        opts[key] = value
    return targets, opts


def int_option(opts: dict[str, str], key: str, default: int | None, lo: int = 1) -> int | None:
    """An integer option (>= ``lo``), or ``default`` when not given."""
    if key not in opts:
        return default
    try:
        value = int(opts[key])
    except ValueError:
        value = lo - 1
    if value < lo:
        raise ArgumentError(f"error: bad {key} {opts[key]!r}; valid: an integer >= {lo}")
    return value


def validate_argv(argv: list[str], conf_dir: str | Path) -> None:
    """Exit 2 with one line naming the bad value and the valid choices, for any unknown group option."""
    known = groups(conf_dir)
    for arg in argv:
        m = OVERRIDE.match(arg)
        if not m or m["group"] not in known:
            continue
        valid = choices(conf_dir, m["group"])
        for value in m["value"].split(","):
            if value and value != "null" and value not in valid:
                print(bad_choice(m["group"], value, valid), file=sys.stderr)
                raise SystemExit(2)
