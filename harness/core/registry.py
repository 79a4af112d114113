"""Plug-ins by short name, every kind the same way: adapters, objectives, task kinds, model sources,
measurements, report sections and claims each have one :class:`Registry` in their package.

A plug-in is one module in its package that registers itself (``REGISTRY.register(name)`` as a decorator, or a
kind's own decorator built on it), plus at most one YAML in the matching ``conf/`` group; the package's modules
are imported on first lookup (``pkgutil``), so nothing else is edited. An unknown name is one line with
did-you-mean; a name registered twice from two modules is refused.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


def bad_choice(group: str, value: str, valid: list[str]) -> str:
    """The one-line error for an unknown name: the value, the closest valid one, and all of them."""
    hint = difflib.get_close_matches(value, valid, n=1)
    near = f" (did you mean {hint[0]!r}?)" if hint else ""
    return f"error: unknown {group} {value!r}{near}; valid: {', '.join(valid)}"


class UnknownName(ValueError):
    """A name no plug-in registered; the message is the one-line error with the valid names."""


class BadValue(ValueError):
    """A setting with a bad value: one line naming the key, the value and what is valid."""

    def __init__(self, key: str, value: object, valid: str):
        self.key, self.value, self.valid = key, value, valid
        super().__init__(f"bad {key} {value!r}; valid: {valid}")


class Registry(Generic[T]):
    """Name -> plug-in for the modules of one package (``package``, e.g. ``"harness.train.objectives"``)."""

    def __init__(self, kind: str, package: str, skip: tuple[str, ...] = ()):
        self.kind = kind  # how errors name it: "objective", "task kind", "model source"
        self.package = package
        self.skip = set(skip)  # helper modules that register nothing
        self.entries: dict[str, T] = {}
        self._found = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@REGISTRY.register("name")`` on the plug-in (a function or a class)."""

        def deco(obj: T) -> T:
            old = self.entries.get(name)
            if old is not None and _module(old) != _module(obj):
                raise ValueError(f"{self.kind} {name!r} registered twice ({_module(old)}, {_module(obj)})")
            self.entries[name] = obj
            return obj

        return deco

    def discover(self) -> None:
        """Import every module of the package once, so each registers itself."""
        if self._found:
            return
        pkg = importlib.import_module(self.package)
        for mod in pkgutil.iter_modules(pkg.__path__):
            if mod.name not in self.skip and not mod.name.startswith("_"):
                importlib.import_module(f"{self.package}.{mod.name}")
        self._found = True

    def names(self) -> list[str]:
        self.discover()
        return sorted(self.entries)

    def values(self) -> list[T]:
        """Every registered plug-in (the package's modules imported first), by name."""
        self.discover()
        return [self.entries[n] for n in sorted(self.entries)]

    def get(self, name: str) -> T:
        """The plug-in registered as ``name``; :class:`UnknownName` (one line, did-you-mean) otherwise."""
        self.discover()
        if name not in self.entries:
            raise UnknownName(bad_choice(self.kind, str(name), self.names()).removeprefix("error: "))
        return self.entries[name]


def _module(obj: object) -> str:
    """The module that defined a plug-in: a class's or a function's own, else that of the first function the
    object holds (a report section's ``render``, a claim's ``estimate``, a measurement's ``run``)."""
    if isinstance(obj, type) or callable(obj):
        return getattr(obj, "__module__", "")
    for value in vars(obj).values() if hasattr(obj, "__dict__") else ():
        if callable(value) and hasattr(value, "__module__"):
            return value.__module__
    return type(obj).__module__
