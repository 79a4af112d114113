"""The sweep report as a user reads it: tables, failed runs listed, resumed sweeps, the W&B Report spec."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT, run_cli

pytestmark = pytest.mark.integration  # real launches: see pyproject's marker

FAST = ["model=tiny", "objective.steps=2", "eval.limit=4", "entk.n_probe=4", "entk.k=4", "name=r"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """A finished 2-run tiny sweep with W&B offline, one run made to fail (non-finite gradient)."""
    out = tmp_path_factory.mktemp("sweep")
    r = run_cli("-m", *FAST, "adapter=full", "objective=sft", "objective.lr=1e30,1e-4", "objective.steps=3",
                out=out)
    # the sweep goes on past the failed run and writes its report, then exits non-zero naming it
    assert r.returncode == 1, r.stderr[-3000:]
    assert "[harness] report:" in r.stdout  # the multirun ends with the report's path
    assert "1 of 2 runs not done" in r.stderr and "objective.lr=1e+30" in r.stderr.splitlines()[-1]
    return out / "r"


def test_report_lists_failed_run_and_reports_the_rest(sweep):
    text = (sweep / "report.md").read_text()
    assert "## Runs not included" in text and "failed" in text and "non-finite" in text
    t1 = pd.read_csv(sweep / "report" / "table1_geometry_accuracy.csv")
    assert len(t1) == 1 and t1["n"].tolist() == [1]
    assert t1["objective.lr"].astype(str).tolist() == ["0.0001"]
    assert "Table 1" in text and "model: `tiny`" in text
    assert (sweep / "report" / "curves.png").exists()


def test_report_command_rebuilds_the_same_tables(sweep):
    before = (sweep / "report" / "table1_geometry_accuracy.csv").read_text()
    r = subprocess.run([sys.executable, "-m", "harness.report", str(sweep)], capture_output=True, text=True,
                       cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert str(sweep / "report.md") in r.stdout
    assert (sweep / "report" / "table1_geometry_accuracy.csv").read_text() == before


def test_a_failing_section_is_named_and_skipped(sweep, capsys, tmp_path):
    """A section that raises is named in the report and skipped (its table dropped); the rest is written, and
    no file of an older report stays in report/ (on a copy of the sweep: the other tests read its report)."""
    import shutil

    from harness.report import build_report
    from harness.report.base import REGISTRY, section

    sweep = Path(shutil.copytree(sweep, tmp_path / "r"))
    stale = sweep / "report" / "stale_from_an_older_report.csv"
    stale.write_text("x\n1\n")

    @section(35, "broken_test_section", "A broken section")
    def broken(ctx):
        ctx.tables["broken_test_section"] = pd.DataFrame({"a": [1]})
        raise RuntimeError("this section is broken on purpose")

    try:
        build_report(sweep, wandb_log=False, analyze=False)
    finally:
        REGISTRY.entries.pop("broken_test_section")
    text = (sweep / "report.md").read_text()
    assert "## A broken section\n\n*This section failed and was skipped: `RuntimeError: this section is broken on " \
           "purpose`.*" in text
    assert "Table 1" in text and "## Runs not included" in text  # the sections before and after it
    assert not (sweep / "report" / "broken_test_section.csv").exists()
    assert (sweep / "report" / "table1_geometry_accuracy.csv").exists() and not stale.exists()
    assert not (sweep / "report.previous").exists()
    assert "report section 'broken_test_section' failed and was skipped" in capsys.readouterr().err


def test_report_bad_dir_exits_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "harness.report", str(tmp_path / "nope")], capture_output=True,
                       text=True, cwd=ROOT)
    assert r.returncode == 2 and "does not exist" in r.stderr


def _logged(job: Path, key: str) -> bool:
    """Whether the run's offline W&B transaction log holds metric ``key`` (protobuf stores keys as raw
    UTF-8, so a logged history or summary key appears verbatim in the .wandb file)."""
    return any(key.encode() in p.read_bytes() for p in job.glob("wandb/offline-run-*/run-*.wandb"))


def test_wandb_report_spec_refers_to_logged_metrics(sweep):
    spec = json.loads((sweep / "report" / "wandb_report.json").read_text())
    blocks = spec["spec"]["blocks"]
    assert any(b["type"] == "heading" for b in blocks)
    grid = next(b for b in blocks if b["type"] == "panel-grid")
    panels = grid["metadata"]["panelBankSectionConfig"]["panels"]
    wanted = set()
    for p in panels:
        cfg = p["config"]
        wanted |= set(cfg.get("metrics") or [])
    assert "train/loss" in wanted and any(k.startswith("eval/") for k in wanted)
    good = next(j for j in sweep.iterdir() if "objective.lr=0.0001" in j.name)
    # SFT runs log no reward: reward panels are for the RLVR runs of the group
    missing = {k for k in wanted if not _logged(good, k) and k not in ("train/reward", "train/frac_reward_zero_std")}
    assert not missing, f"report panels name metrics no run logged: {missing}"
    assert not _logged(good, "train/no_such_metric")
    # the report run of the group holds the tables
    assert list((sweep / "report" / "wandb").glob("offline-run-*"))


def test_resumed_sweep_reports_like_an_uninterrupted_one(tmp_path):
    args = [*FAST, "logger=none", "adapter=full,lora", "objective=sft"]
    full = tmp_path / "full"
    r = run_cli("-m", *args, out=full)
    assert r.returncode == 0, r.stderr[-3000:]

    part = tmp_path / "part"
    env = {**os.environ, "HARNESS_OUT": str(part)}
    proc = subprocess.Popen([sys.executable, "-m", "harness.launch.run", "-m", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:  # kill once the first run is done
        if any('"done"' in p.read_text() for p in (part / "r").glob("*/run.json")):
            break
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    statuses = [json.loads(p.read_text())["status"] for p in (part / "r").glob("*/run.json")]
    assert statuses.count("done") == 1 and not (part / "r" / "report.md").exists()

    r2 = run_cli("-m", *args, out=part)
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert r2.stdout.count("already done") == 1  # only what was not done ran again
    for table in ("table1_geometry_accuracy.csv", "table5_entk.csv"):
        a = pd.read_csv(full / "r" / "report" / table)
        b = pd.read_csv(part / "r" / "report" / table)
        pd.testing.assert_frame_equal(a, b)
