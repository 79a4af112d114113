"""``python -m harness.analyze``: sweep, run, checkpoint pair; bad artifacts warn; bad input exits 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from harness.analysis.geometry.analyze_run import analyze_sweep, settings_tag
from harness.analysis.geometry.metrics import Settings
from harness.analysis.geometry.synthetic import synthetic_delta, write_checkpoint, write_run
from harness.launch import analyze
from tests.conftest import ROOT

SHAPES = {"q": (32, 32), "k": (16, 32), "v": (16, 32), "o": (32, 32), "gate": (48, 32), "up": (48, 32),
          "down": (32, 48)}


def name(layer: int, module: str) -> str:
    block = "mlp" if module in ("gate", "up", "down") else "self_attn"
    return f"model.layers.{layer}.{block}.{module}_proj.weight"


def base_weights(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    w = {name(i, m): torch.randn(*s, generator=g) / 6 for i in range(2) for m, s in SHAPES.items()}
    w["model.embed_tokens.weight"] = torch.randn(50, 32, generator=g)
    w["model.norm.weight"] = torch.ones(32)
    return w


@pytest.fixture
def sweep(tmp_path, monkeypatch) -> Path:
    """A 2-run sweep from one base; run b leaves k_proj untouched (as a LoRA on some modules would)."""
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    weights = base_weights()
    base = write_checkpoint(tmp_path / "base", weights)
    g = torch.Generator().manual_seed(1)
    out = tmp_path / "sweep"
    for adapter in ("full", "lora"):
        d = {n: synthetic_delta(w, g) for n, w in weights.items() if n.endswith("_proj.weight")}
        if adapter == "lora":
            d = {n: v * 0 if ".k_proj" in n else v for n, v in d.items()}
        write_run(out / f"adapter={adapter},objective=sft", base, d, adapter=adapter)
    return out


@pytest.mark.integration
def test_analyze_sweep_cli(sweep: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # HARNESS_CACHE: the fixture's tmp dir
    res = subprocess.run([sys.executable, "-m", "harness.launch.analyze", str(sweep)], capture_output=True, text=True,
                         cwd=ROOT, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "full/sft/s0" in res.stdout and "lora/sft/s0" in res.stdout and "drift" in res.stdout
    for run in sweep.glob("adapter=*"):
        table = pd.read_csv(run / "geometry.csv")
        assert len(table) == 14 and set(table["module"]) == set(SHAPES)
        summary = json.loads((run / "geometry_summary.json").read_text())
        assert list(summary["by_module"]) == list(SHAPES) and set(summary["by_layer"]) == {"0", "1"}
        assert summary["whole_model"]["params"] == table["params"].sum()
    lora = pd.read_csv(sweep / "adapter=lora,objective=sft" / "geometry.csv").set_index("module")
    assert (lora.loc["k", "sparsity_bf16"] == 1).all() and lora.loc["k", "eff_rank"].isna().all()  # no rank
    assert lora.loc["k", "energy_k16"].isna().all()  # undefined for a zero update, not 0
    cross = pd.read_csv(sweep / "cross_run.csv")
    assert set(cross["scope"]) == {"all", *SHAPES}
    assert len(pd.read_csv(sweep / "geometry_runs.csv")) == 2
    for plot in ("layers", "spectrum", "energy"):
        assert (sweep / "plots" / f"geometry_{plot}.png").stat().st_size > 1000
    assert not list(sweep.rglob("*.tmp*"))  # atomic writes leave no temp files


def test_bad_artifacts_warn_and_the_rest_is_analyzed(sweep: Path, capsys) -> None:
    good = sweep / "adapter=full,objective=sft"
    corrupt = sweep / "adapter=lora,objective=sft"
    (corrupt / "delta.safetensors").write_bytes(b"\x00garbage" * 10)
    truncated = sweep / "adapter=trunc,objective=sft"
    write_run(truncated, Path(json.loads((good / "run.json").read_text())["base_dir"]),
              {name(0, "q"): torch.ones(32, 32)})
    blob = (truncated / "delta.safetensors").read_bytes()
    (truncated / "delta.safetensors").write_bytes(blob[: len(blob) - 100])
    failed = write_run(sweep / "adapter=failed,objective=sft", good, {}, status="failed")
    no_json = sweep / "adapter=nojson,objective=sft"
    write_run(no_json, good, {})
    (no_json / "run.json").unlink()

    text = analyze_sweep(sweep, Settings())
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("[harness] warning: run ") for line in err)
    for bad in (corrupt, truncated, failed, no_json):
        assert any(bad.name in line for line in err)
        assert not (bad / "geometry.csv").exists() and not (bad / "geometry_summary.json").exists()
    assert (good / "geometry.csv").exists() and "full/sft/s0" in text and "4 skipped" in text


def test_stored_analysis_reused_unless_settings_change(sweep: Path) -> None:
    analyze_sweep(sweep, Settings())
    csv = sweep / "adapter=full,objective=sft" / "geometry.csv"
    stamp = csv.stat().st_mtime_ns
    analyze_sweep(sweep, Settings())
    assert csv.stat().st_mtime_ns == stamp
    # Other settings sit beside the default analysis (the report reads the default): neither overwrites the other.
    analyze_sweep(sweep, Settings(ks=(8,)))
    tag = settings_tag(Settings(ks=(8,)))
    other = csv.with_name(f"geometry{tag}.csv")
    assert tag and csv.stat().st_mtime_ns == stamp and "angle_k8" in pd.read_csv(other).columns
    assert "angle_k8" not in pd.read_csv(csv).columns
    assert (sweep / f"cross_run{tag}.csv").exists() and (sweep / f"plots{tag}" / "geometry_layers.png").exists()
    analyze_sweep(sweep, Settings())
    assert csv.stat().st_mtime_ns == stamp  # the default analysis is reused, not recomputed


def test_run_dir_and_sections(sweep: Path, capsys, monkeypatch) -> None:
    """A report section registered with console=True (here from outside the package) is printed after a sweep's
    geometry; a run dir prints its geometry alone."""
    from harness.report.base import REGISTRY, Section, ordered

    ordered()  # the package's own sections first
    extra = Section(99, "extra", "Extra", lambda ctx: f"extra section for {ctx.sweep.path.name}", console=True)
    monkeypatch.setitem(REGISTRY.entries, "extra", extra)
    analyze.main([str(sweep)])
    out = capsys.readouterr().out
    assert f"## Extra\n\nextra section for {sweep.name}" in out and out.index("extra section") > out.index("full/sft/s0")
    run = sweep / "adapter=full,objective=sft"
    analyze.main([str(run), "k=4", "alpha=0.1", f"matrix={name(1, 'up')}"])
    out = capsys.readouterr().out
    assert "full/sft/s0" in out and "extra section" not in out
    tag = settings_tag(Settings(ks=(4,), alpha=0.1))
    assert "angle_k4" in pd.read_csv(run / f"geometry{tag}.csv").columns
    assert (run / f"plots{tag}" / "geometry_spectrum.png").exists()


def test_checkpoint_pair(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    weights = base_weights()
    base = write_checkpoint(tmp_path / "base", weights)
    tuned = write_checkpoint(tmp_path / "tuned", {k: v * 1.01 for k, v in weights.items()})
    analyze.main([f"base={base}", f"tuned={tuned}", f"out={tmp_path / 'out'}"])
    table = pd.read_csv(tmp_path / "out" / "geometry.csv")
    assert len(table) == 14  # projections only: embeddings and norms are not analyzed by default
    assert table["drift"].to_numpy() == pytest.approx(0.01, rel=1e-3)  # W1 = 1.01·W0
    assert "tuned" in capsys.readouterr().out


@pytest.mark.parametrize("argv, value", [
    (["nonexistent_dir"], "nonexistent_dir"),
    (["{sweep}", "topk=fastest"], "fastest"),
    (["{sweep}", "k=abc"], "abc"),
    (["{sweep}", "alpha=2"], "2"),
    (["{sweep}", "colour=red"], "colour"),
    (["base=no_such_model", "tuned=tiny"], "no_such_model"),
    (["{sweep}", "matrix=model.layers.0.self_attn.q_prj.weight"], "q_prj"),
    (["{sweep}", "device=gpu"], "cuda:<n> | mps"),  # the same devices a run's model.device accepts
])
def test_bad_input_exits_2_with_one_line(sweep: Path, argv: list[str], value: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        analyze.main([a.format(sweep=sweep) for a in argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error:") and value in err[-1]
    assert "valid" in err[-1] or "no such" in err[-1]


@pytest.mark.integration
def test_pair_of_harness_checkpoints_matches_the_run(tmp_path) -> None:
    """A run saved with save_model=true: analyzing (base dir, saved model) gives the run's own geometry."""
    from tests.conftest import run_cli

    r = run_cli("model=tiny", "logger=none", "objective.steps=2", "adapter=full", "save_model=true",
                "eval.enabled=false", "entk.enabled=false", "objective.lr=0.01", out=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    (run,) = [p.parent for p in tmp_path.rglob("run.json")]
    base = json.loads((run / "run.json").read_text())["base_dir"]
    analyze.main([str(run)])
    analyze.main([f"base={base}", f"tuned={run / 'model'}", f"out={tmp_path / 'pair'}"])
    a = json.loads((run / "geometry_summary.json").read_text())["whole_model"]
    b = json.loads((tmp_path / "pair" / "geometry_summary.json").read_text())["whole_model"]
    for key in ("drift", "sparsity_bf16", "sparsity_abs", "eff_rank", "angle_all_k16"):
        assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key
