"""Unlearnability: pass-rate estimation, rollout ledger, classification, gradient similarity.

- :mod:`.passrate`: pass@1 sampler, start pass rates cached per base, the run hook writing ``prompts.csv``;
- :mod:`.ledger`: the RLVR rollout ledger aggregated per prompt and per step, and the correct rollouts kept;
- :mod:`.classify`: easy / learnable / unlearnable / never-rewarded, per run and across seeds;
- :mod:`.gradsim`: count-sketched per-prompt gradients of the correct training rollouts, cosine similarity,
  bootstrap CI, the group permutation test over the prompt x prompt matrix;
- :mod:`.report`: the sweep section (``unlearnability.csv``, markdown, plots).
"""

from __future__ import annotations

from pathlib import Path


def unlearnability_section(sweep_dir: Path, out_dir: Path | None = None) -> str | None:
    """Markdown section of the sweep's unlearnability analysis (writes CSVs and plots); None without prompts.csv."""
    from harness.unlearn.report import unlearnability_section as section

    return section(sweep_dir, out_dir)
