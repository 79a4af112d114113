"""One registry for every plug-in kind (issue 20): the table every registered plug-in inherits. Each kind's
registry lists its plug-ins from its package, answers an unknown name with one did-you-mean line, refuses a
name registered twice from another module, and every YAML of a config group names a registered plug-in."""

from __future__ import annotations

import pytest
import yaml

from harness.claims.base import REGISTRY as CLAIMS
from harness.core.registry import Registry, UnknownName
from harness.data.rewards import REWARDS
from harness.data.sources import SOURCES
from harness.data.tasks import KINDS
from harness.measure.base import REGISTRY as MEASUREMENTS
from harness.measure.edits import REGISTRY as EDITS
from harness.report.base import REGISTRY as SECTIONS
from harness.train.adapters import REGISTRY as ADAPTERS
from harness.train.objectives import OBJECTIVES
from tests.conftest import ROOT

REGISTRIES = {"adapter": ADAPTERS, "objective": OBJECTIVES, "task kind": KINDS, "model source": SOURCES,
              "measurement": MEASUREMENTS, "surgery edit": EDITS, "report section": SECTIONS, "claim": CLAIMS,
              "objective.reward": REWARDS}


@pytest.mark.parametrize("kind", REGISTRIES)
def test_every_kind_is_one_registry_over_its_package(kind):
    reg = REGISTRIES[kind]
    assert isinstance(reg, Registry) and reg.kind == kind
    names = reg.names()
    assert names and reg.values() == [reg.get(n) for n in names]
    # every plug-in comes from a module of the registry's package
    from harness.core.registry import _module

    assert all(_module(reg.get(n)).startswith(reg.package + ".") for n in names), kind


@pytest.mark.parametrize("kind", REGISTRIES)
def test_an_unknown_name_is_one_line_with_did_you_mean(kind):
    reg = REGISTRIES[kind]
    name = reg.names()[0]
    with pytest.raises(UnknownName) as exc:
        reg.get(name + "x")
    line = str(exc.value)
    assert "\n" not in line and line.startswith(f"unknown {kind} '{name}x' (did you mean '{name}'?); valid: ")


@pytest.mark.parametrize("kind", REGISTRIES)
def test_a_name_registered_twice_from_another_module_is_refused(kind):
    reg = REGISTRIES[kind]
    name = reg.names()[0]

    def impostor():  # defined here, in the test module
        pass

    with pytest.raises(ValueError, match="registered twice"):
        reg.register(name)(impostor)
    assert reg.get(name) is not impostor


# Which registry each config group's YAMLs name, and by which key (default: the file's own name).
GROUP_KEYS = {"adapter": (ADAPTERS, lambda d, stem: d.get("kind", d.get("name", stem))),
              "objective": (OBJECTIVES, lambda d, stem: d.get("name", stem)),
              "task": (KINDS, lambda d, stem: d.get("kind", "reasoning_gym")),
              "model": (SOURCES, lambda d, stem: d["source"])}


@pytest.mark.parametrize("group", GROUP_KEYS)
def test_every_yaml_of_a_group_names_a_registered_plugin(group):
    reg, key = GROUP_KEYS[group]
    files = sorted((ROOT / "harness" / "conf" / group).glob("*.yaml"))
    assert files
    for f in files:
        data = yaml.safe_load(f.read_text())
        assert key(data, f.stem) in reg.names(), f"{f.name} names {key(data, f.stem)!r}, not a registered {reg.kind}"
