"""A non-editable install works from any directory: the config tree ships inside the package."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration  # real launches: see pyproject's marker


def test_wheel_install_runs_from_another_directory(tmp_path, harness_cache):
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(wheels), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next(wheels.glob("harness-*.whl"))
    inst = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                           str(wheel)], capture_output=True, text=True, timeout=300)
    assert inst.returncode == 0, inst.stderr[-2000:]
    assert (site / "harness" / "conf" / "config.yaml").exists()
    assert (site / "harness" / "conf" / "sweeps" / "demo.yaml").exists()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "HARNESS_OUT": str(tmp_path / "out")}
    where = subprocess.run([sys.executable, "-c", "import harness; print(harness.__file__)"], cwd=elsewhere,
                           env=env, capture_output=True, text=True)
    assert Path(where.stdout.strip()).is_relative_to(site)  # the installed copy, not the checkout
    r = subprocess.run([sys.executable, "-m", "harness.launch.run", "model=tiny", "logger=none", "objective.steps=1",
                        "eval.enabled=false", "entk.enabled=false", "task.n_train=4", "task.n_test=4"],
                       cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    runs = list((tmp_path / "out" / "default" / "single").glob("*/delta.safetensors"))
    assert len(runs) == 1
