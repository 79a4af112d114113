"""Pair studies: released checkpoint pairs (a base and its RLVR / SFT / distilled descendant) analysed the
way a sweep's runs are, so the same tables, plots and Claims section judge the field's own models.

``python -m harness.analyze pairs=<file.yaml>`` (:mod:`harness.launch.pairs_study`) reads a list of pairs
(:mod:`harness.analysis.pairs.spec`), writes one run-like directory per pair (``.hydra/config.yaml``,
``.hydra/overrides.yaml``, ``run.json`` whose ``pair`` entry names the two checkpoints) and analyses it with the
geometry analyzer; the sweep reader, the report and the claims then read it like any sweep, with pairs in
place of seeds. This module holds what the readers need to tell a pair study from a sweep (no heavy imports).
"""

from __future__ import annotations

from typing import Any

PAIR_KEY = "pair"  # run.json / config entry of a pair directory
OBJECTIVES = ("rlvr", "sft", "distillation", "other")  # what produced the tuned checkpoint
GROUP_KEY = "group"  # the override that groups pairs (family / base); pairs of one group are compared


def pair_of(run: Any) -> dict | None:
    """The ``pair`` entry of a run directory's ``run.json`` (:class:`harness.analysis.sweep.RunDir`), None for a run."""
    rec = getattr(run, "record", None) or {}
    pair = rec.get(PAIR_KEY)
    return pair if isinstance(pair, dict) else None


def is_pair_study(sweep: Any) -> bool:
    """Whether a :class:`harness.analysis.sweep.Sweep` holds checkpoint pairs (every run directory is a pair)."""
    runs = getattr(sweep, "runs", None) or []
    return bool(runs) and all(pair_of(r) is not None for r in runs)
