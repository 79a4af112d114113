"""One command for every stage (issue 20): ``harness <command>`` dispatches to each stage's own entry point, a
bad command is one line with the valid ones (exit 2), and overrides alone still train."""

from __future__ import annotations

import subprocess
import sys
import tomllib

import pytest

from harness.__main__ import COMMANDS
from tests.conftest import ROOT


def harness(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def test_console_script_is_declared():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"harness": "harness.__main__:main"}


def test_unknown_command_is_one_line():
    r = harness("reprot", "outputs/demo")
    assert r.returncode == 2
    assert r.stderr.strip() == ("error: unknown command 'reprot' (did you mean 'report'?); valid: "
                                f"{', '.join(COMMANDS)}")


@pytest.mark.integration
@pytest.mark.parametrize("args,line", [
    # each reaches its stage: the stage's own one-line refusal of a bad argument
    (["train", "model=tiny", "objective.steps=-1"], "error: bad objective.steps -1; valid: an integer >= 1"),
    (["model=tiny", "objective.steps=-1"], "error: bad objective.steps -1; valid: an integer >= 1"),  # no command
    (["report", "/no/such/sweep"], "error: sweep dir '/no/such/sweep' does not exist"),
    (["claims", "/no/such/sweep"], "error: '/no/such/sweep' is not a sweep dir (no */.hydra/config.yaml)"),
    (["analyze", "/no/such/run"], "error: no such run or sweep dir '/no/such/run'"),
    (["bench", "nope"], "error: unknown bench 'nope'; valid: "),
])
def test_each_command_reaches_its_stage(args, line):
    r = harness(*args)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert r.stderr.strip().splitlines()[-1].startswith(line), r.stderr[-2000:]
