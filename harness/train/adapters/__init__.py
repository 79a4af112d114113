"""Adapters, registered by short name. A new adapter is one module in this package (decorated with
:func:`register`) plus one ``conf/adapter/<name>.yaml``; modules here are discovered automatically."""

from __future__ import annotations

from harness.train.adapters.base import REGISTRY, Adapter, Delta, analyzed_weights, merged_delta, register

__all__ = ["Adapter", "Delta", "REGISTRY", "register", "adapter_class", "build_adapter", "available",
           "merged_delta", "analyzed_weights"]


def available() -> list[str]:
    return REGISTRY.names()


def adapter_class(cfg) -> type[Adapter]:
    """The class of the adapter named ``cfg.kind`` (defaults to ``cfg.name``); one line with the valid names
    otherwise (:class:`harness.core.registry.UnknownName`)."""
    return REGISTRY.get(cfg.get("kind", cfg.name))


def build_adapter(cfg, seed: int = 0) -> Adapter:
    """Instantiate the adapter named ``cfg.kind`` (defaults to ``cfg.name``)."""
    return adapter_class(cfg)(cfg, seed)
