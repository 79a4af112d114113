"""Adapters, registered by short name. A new adapter is one module in this package (decorated with
:func:`register`) plus one ``conf/adapter/<name>.yaml``; modules here are discovered automatically."""

from __future__ import annotations

import importlib
import pkgutil

from harness.adapters.base import REGISTRY, Adapter, Delta, analyzed_weights, merged_delta, register

__all__ = ["Adapter", "Delta", "REGISTRY", "register", "build_adapter", "available", "merged_delta",
           "analyzed_weights"]


def _discover() -> None:
    for mod in pkgutil.iter_modules(__path__):
        if mod.name != "base":
            importlib.import_module(f"{__name__}.{mod.name}")


def available() -> list[str]:
    _discover()
    return sorted(REGISTRY)


def build_adapter(cfg, seed: int = 0) -> Adapter:
    """Instantiate the adapter named ``cfg.kind`` (defaults to ``cfg.name``)."""
    _discover()
    kind = cfg.get("kind", cfg.name)
    if kind not in REGISTRY:
        raise ValueError(f"unknown adapter {kind!r}; valid: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[kind](cfg, seed)
