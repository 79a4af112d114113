"""``python -m harness.bench analyzer`` on a small hand-built checkpoint: three timings, ratios, agreement."""

from __future__ import annotations

import re

import pytest
import torch

from harness.analysis.geometry.synthetic import write_checkpoint
from harness.launch import bench


def test_bench_analyzer_prints_timings_and_agreement(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    g = torch.Generator().manual_seed(0)
    shapes = {"self_attn.q_proj": (48, 48), "self_attn.k_proj": (16, 48), "mlp.up_proj": (96, 48),
              "mlp.down_proj": (48, 96)}
    base = write_checkpoint(tmp_path / "base", {f"model.layers.{i}.{k}.weight": torch.randn(*s, generator=g)
                                                for i in range(2) for k, s in shapes.items()})
    bench.main(["analyzer", f"model={base}"])
    out = capsys.readouterr().out
    for label in ("(a) naive", "(b) harness analyzer", "(c) singular values", "b/a =", "b/c ="):
        assert label in out
    worst = float(re.search(r"max \|metric\(a\) - metric\(b\)\| = (\S+)", out).group(1))
    assert worst <= 1e-4  # the fast path computes the same numbers as full float64 SVDs
    assert not list((tmp_path / "cache" / "spectra").glob("*/.*.tmp"))  # no half-written cache


def test_bench_rejects_unknown_names(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        bench.main(["analyser"])
    assert exc.value.code == 2 and "analyser" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        bench.main(["analyzer", "model=no_such_model"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "no_such_model" in err and "tiny" in err


def test_bench_options_are_key_value_like_every_command(capsys) -> None:
    """One argument style (``key=value``, as ``harness analyze``): a misspelt or bad option is one line, exit 2."""
    with pytest.raises(SystemExit) as exc:
        bench.main(["analyzer", "modle=tiny"])
    assert exc.value.code == 2 and capsys.readouterr().err.strip() == (
        f"error: unknown option 'modle' (did you mean 'model'?); valid: {', '.join(bench.OPTIONS)}")
    with pytest.raises(SystemExit) as exc:
        bench.main(["analyzer", "layers=0"])
    assert exc.value.code == 2 and capsys.readouterr().err.strip() == "error: bad layers '0'; valid: an integer >= 1"


def test_bench_null_prints_its_share_of_the_analyzer(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    g = torch.Generator().manual_seed(0)
    base = write_checkpoint(tmp_path / "base", {f"model.layers.{i}.self_attn.q_proj.weight":
                                                torch.randn(48, 40, generator=g) for i in range(2)})
    bench.main(["null", f"model={base}", "repeats=1"])
    out = capsys.readouterr().out
    assert "without null columns" in out and "with null columns" in out
    assert re.search(r"null adds [+-]\d+\.\d%", out)


def test_bench_stats_prints_its_share_of_the_analyzer(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    g = torch.Generator().manual_seed(0)
    base = write_checkpoint(tmp_path / "base", {f"model.layers.{i}.self_attn.q_proj.weight":
                                                torch.randn(48, 40, generator=g) for i in range(2)})
    bench.main(["stats", f"model={base}", "repeats=1"])
    out = capsys.readouterr().out
    assert "analyzer, one run" in out and re.search(r"\d+\.\d% of the analyzer", out)
