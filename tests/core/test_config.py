"""One schema (harness.core.config): the config tree gives each key its default and its type."""

from __future__ import annotations

from omegaconf import OmegaConf

from harness.core.config import block, key_defaults, key_types
from harness.core.record import changed_settings


def test_a_block_is_the_given_values_over_the_defaults_in_their_types():
    got = block(OmegaConf.create({"passk": {"temperature": 1, "n": 4}}), "passk")
    assert got["n"] == 4 and got["temperature"] == 1.0 and isinstance(got["temperature"], float)
    # keys the job config lacks (a config written before they existed) come from conf/config.yaml
    assert got["batch_size"] == key_defaults()["passk.batch_size"][0] == 64
    assert block(OmegaConf.create({}), "kl") == OmegaConf.to_container(OmegaConf.load(
        __import__("harness").CONF_DIR / "config.yaml").kl)


def test_key_types_cover_the_blocks_and_the_groups():
    types = key_types()
    assert types["passrate.grad_sim.dim"] == frozenset({int})
    assert types["objective.grad_accum"] == frozenset({int})  # from conf/objective/*.yaml
    assert types["objective.lr"] == frozenset({type(None)})
    assert not any(k.startswith(("hydra.", "defaults")) for k in types)


def test_a_key_the_run_predates_at_its_default_is_no_change():
    stored = {"objective": {"name": "sft", "steps": 10}}
    now = {"objective": {"name": "sft", "steps": 10, "grad_accum": 1}}
    assert changed_settings(stored, now) == []
    assert changed_settings(stored, {"objective": {**now["objective"], "grad_accum": 2}}) == ["objective.grad_accum"]
    assert changed_settings(stored, {"objective": {"name": "sft", "steps": 11}}) == ["objective.steps"]
