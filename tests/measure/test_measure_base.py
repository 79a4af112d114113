"""The measurement base (issue 20): one registry of post-training measurements run in order, the once-per-base
cache with its cost, the artifact write (NaN as null); a measurement added from outside the package runs in a
real tiny run with no other edit."""

from __future__ import annotations

import json
import math

import pytest

from harness.measure.base import REGISTRY, cached_on_base, measurement, ordered, scrub, write_artifact
from tests.conftest import compose


def test_builtin_measurements_in_order():
    assert [(m.name, m.artifact) for m in ordered()] == [
        ("eval", "eval.json"), ("surgery", "surgery.json"), ("passrate", "prompts.csv"), ("augment", "augment.csv"), ("entk", "entk.json"), ("passk", "passk.json"),
        ("kl", "kl.json")]


def test_a_name_registered_twice_from_another_module_is_refused():
    with pytest.raises(ValueError, match="measurement 'kl' registered twice"):
        measurement("kl", "other.json", 99)(lambda *a: {})


def test_scrub_and_write(tmp_path):
    out = {"a": math.nan, "b": [1.0, math.nan, {"c": math.nan}], "d": "x", "e": 2}
    assert scrub(out) == {"a": None, "b": [1.0, None, {"c": None}], "d": "x", "e": 2}
    write_artifact(tmp_path, "m.json", out)
    assert json.loads((tmp_path / "m.json").read_text()) == scrub(out)  # valid JSON: no NaN token


def test_cached_on_base_computes_once_and_says_what_it_cost(tiny_base):
    calls = []

    def compute():
        calls.append(1)
        return {"value": 42}

    key = {"test": "cached_on_base"}
    first, spent = cached_on_base("test-measure-base", tiny_base, key, compute)
    again, spent_again = cached_on_base("test-measure-base", tiny_base, key, compute)
    assert first == again == {"value": 42} and calls == [1]
    assert spent >= 0 and spent_again == 0.0


@pytest.mark.integration
def test_a_measurement_from_outside_the_package_runs_in_a_real_run(tmp_path, tiny_base):
    """One function and its config block: registered here, it runs after training in its own stage and writes
    its artifact (the number of parameters of the merged model, which must be the base's)."""
    from harness.core.record import RunRecord, read_run
    from harness.launch.run import train_run

    @measurement("param_count", "param_count.json", order=60)
    def param_count(cfg, job_dir, merged, tok, task, base):
        return write_artifact(job_dir, "param_count.json", {"n": sum(p.numel() for p in merged.parameters())})

    try:
        cfg = compose("model=tiny", "adapter=lora", "objective.steps=1", "logger=none", "eval.enabled=false",
                      "entk.enabled=false", "+param_count.enabled=true")
        rec = RunRecord(tmp_path)
        rec.start(cfg)
        train_run(cfg, tmp_path, rec)
        rec.finish("done")
    finally:
        REGISTRY.entries.pop("param_count")
    from harness.data.models import load_model

    base, _ = load_model(tiny_base)
    # the merged model has the base's parameters (the LoRA factors are merged away)
    assert json.loads((tmp_path / "param_count.json").read_text())["n"] == sum(p.numel() for p in base.parameters())
    timings = read_run(tmp_path)["timings"]
    assert "param_count" in timings and list(timings).index("param_count") > list(timings).index("delta")
