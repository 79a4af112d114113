"""One schema: the config tree itself (``conf/config.yaml`` and every group's YAMLs) gives each key its default
and its type. Code reads a settings block through :func:`block` and never carries defaults of its own; the
checks before launch (:mod:`harness.launch.validate`) take each key's type from :func:`key_types` and keep
only ranges, choices and rules across keys in their table."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from harness import CONF_DIR

# Config groups whose files are not blocks of a job config: Hydra's own settings, and studies / arms that
# override keys of other blocks at the top level (``# @package _global_``), or are read by the analyzer.
NOT_BLOCKS = ("hydra", "sweeps", "claims_arm", "pairs")


@functools.cache
def defaults() -> DictConfig:
    """``conf/config.yaml`` without Hydra's keys: the top-level blocks' defaults (read-only)."""
    cfg = OmegaConf.load(Path(CONF_DIR) / "config.yaml")
    out = OmegaConf.masked_copy(cfg, [k for k in cfg if k not in ("defaults", "hydra")])
    OmegaConf.set_readonly(out, True)
    return out


def _typed(value: Any, default: Any) -> Any:
    """``value`` in its default's type where YAML cannot tell (``1`` for a float key is ``1.0``)."""
    if isinstance(default, dict) and isinstance(value, dict):
        return {k: _typed(v, default.get(k)) for k, v in value.items()}
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def block(cfg: DictConfig, key: str) -> dict:
    """The ``key`` block of a job config over the defaults of ``conf/config.yaml`` (a config written before a key
    existed still reads), resolved, each value in its default's type."""
    base = OmegaConf.select(defaults(), key)
    given = OmegaConf.select(cfg, key, default=None)
    merged = base if given is None else OmegaConf.merge(base, given) if base is not None else given
    if merged is None:
        raise KeyError(f"no {key!r} block in the config or in conf/config.yaml")
    default = OmegaConf.to_container(base) if base is not None else {}
    return _typed(OmegaConf.to_container(merged, resolve=True), default)


def _leaves(node: Any, prefix: str) -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_leaves(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: node}


@functools.cache
def _tree() -> dict[str, list]:
    """Every leaf key the config tree defines -> its values over all files (config.yaml, then each group's)."""
    conf = Path(CONF_DIR)
    found: dict[str, list] = {}

    def add(node: Any, prefix: str) -> None:
        for key, value in _leaves(node, prefix).items():
            found.setdefault(key, []).append(value)

    add(OmegaConf.to_container(defaults()), "")
    for group in sorted(p for p in conf.iterdir() if p.is_dir() and p.name not in NOT_BLOCKS):
        for f in sorted(group.glob("*.yaml")):
            node = OmegaConf.to_container(OmegaConf.load(f))
            add({k: v for k, v in node.items() if k != "defaults"}, group.name)
    return found


def key_defaults() -> dict[str, list]:
    """Every leaf key -> the default values the tree's files give it."""
    return {k: list(v) for k, v in _tree().items()}


@functools.cache
def key_types() -> dict[str, frozenset[type]]:
    """Every leaf key the config tree defines (``model.warmup.lr``, ``adapter.r``, ...) -> the types of its values
    over all files (``NoneType`` where some file leaves it null). A key renamed in a YAML leaves this table, so a
    check that names the old key fails its test."""
    return {k: frozenset(type(v) for v in values) for k, values in _tree().items()}
