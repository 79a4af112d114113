"""ΔW edits for surgery (:mod:`harness.measure.surgery`): small functions T, one per registered name, that map a
matrix's update ΔW to an edited update T(ΔW); surgery then evaluates W0 + T(ΔW).

An edit is ``fn(delta, w0, site, **params) -> Tensor``: ``delta`` and ``w0`` are one matrix's ΔW and base weight
(float64, m×n), ``site`` says which matrix it is (:class:`Site`: name, layer, depth, attn/mlp) so that layer- and
module-type edits can decide, and the result is the edited ΔW (float64, m×n). Each edit registers itself with
:func:`edit`, naming its parameters' checks; a config entry ``{edit: <name>, params: {...}}`` is checked before
launch by :func:`check` (one line naming the key, the value and what is valid).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.core.registry import BadValue, Registry, UnknownName, bad_choice

ATTN = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP = ("gate_proj", "up_proj", "down_proj")
_LAYER = re.compile(r"\.layers\.(\d+)\.")


@dataclass
class Site:
    """Where a matrix sits: its name in the state dict, its decoder layer (None outside the layers), the number
    of layers, its kind (``attn``, ``mlp`` or ``other``), and a memo that edits of one run share (W0's
    decompositions, computed once per matrix and k)."""

    name: str
    layer: int | None
    depth: int
    kind: str
    memo: dict = field(default_factory=dict, repr=False)


def site(name: str, depth: int) -> Site:
    """The :class:`Site` of the state-dict key ``name`` in a model of ``depth`` decoder layers."""
    hit = _LAYER.search(name)
    leaf = name.rsplit(".", 2)[-2] if name.endswith(".weight") else name.rsplit(".", 1)[-1]
    kind = "attn" if leaf in ATTN else "mlp" if leaf in MLP else "other"
    return Site(name, int(hit.group(1)) if hit else None, int(depth), kind)


def depth_of(names: list[str]) -> int:
    """Number of decoder layers: one more than the largest layer index among ``names`` (0 if none)."""
    layers = [int(h.group(1)) for h in map(_LAYER.search, names) if h]
    return max(layers) + 1 if layers else 0


@dataclass(frozen=True)
class Param:
    """A parameter's check and the words saying what is valid."""

    ok: Callable[[Any], bool]
    valid: str


@dataclass(frozen=True)
class Edit:
    name: str
    fn: Callable[..., Any]  # (delta, w0, site, **params) -> edited delta
    params: dict[str, Param]
    required: tuple[str, ...]  # parameters without a default


REGISTRY: Registry[Edit] = Registry("surgery edit", "harness.measure.edits")


def edit(name: str, **params: Param) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register an edit: ``@edit("rank", k=Param(..., "an integer >= 0"))`` on ``fn(delta, w0, site, *, k)``."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(fn).parameters
        required = tuple(p for p in params if sig[p].default is inspect.Parameter.empty)
        REGISTRY.register(name)(Edit(name, fn, dict(params), required))
        return fn

    return deco


def is_int(lo: int = 0) -> Param:
    return Param(lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= lo, f"an integer >= {lo}")


def is_num(lo: float, hi: float) -> Param:
    return Param(lambda v: isinstance(v, int | float) and not isinstance(v, bool) and lo <= v <= hi,
                 f"a number in [{lo}, {hi}]")


def check(key: str, spec: Any) -> None:
    """A config entry ``{edit: <registered name>, params: {...}}`` (at config key ``key``) is valid, else
    :class:`BadValue` / one line naming what is wrong."""
    if not isinstance(spec, dict) or not isinstance(spec.get("edit"), str) or not set(spec) <= {"edit", "params"}:
        raise BadValue(key, spec, "null or a mapping {edit: <name>, params: {...}}")
    name = spec["edit"]
    if name not in REGISTRY.names():
        raise UnknownName(bad_choice(f"{key}.edit", name, REGISTRY.names()).removeprefix("error: "))
    e = REGISTRY.get(name)
    given = spec.get("params") or {}
    if not isinstance(given, dict):
        raise BadValue(f"{key}.params", given, "a mapping")
    for p, value in given.items():
        if p not in e.params:
            raise BadValue(f"{key}.params", p, f"parameters of edit {name!r}: {', '.join(e.params) or 'none'}")
        if not e.params[p].ok(value):
            raise BadValue(f"{key}.params.{p}", value, e.params[p].valid)
    missing = [p for p in e.required if p not in given]
    if missing:
        raise BadValue(f"{key}.params.{missing[0]}", None, e.params[missing[0]].valid)


def apply(spec: dict, delta: Any, w0: Any, where: Site) -> Any:
    """The edited update T(ΔW) of one matrix for a config entry ``{edit, params}``."""
    e = REGISTRY.get(spec["edit"])
    return e.fn(delta, w0, where, **(spec.get("params") or {}))
