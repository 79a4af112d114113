"""The geometry analyzer: per-matrix update metrics, the base-spectrum cache, cross-run comparisons, plots.

Entry points: ``python -m harness.analyze`` (see :mod:`harness.launch.analyze`) and
:func:`harness.analysis.geometry.analyze_run.analyze_sweep` / ``analyze_run_dir`` / ``analyze_pair``.
"""

from harness.analysis.geometry.metrics import Settings

__all__ = ["Settings"]
