"""Report sections, one module each; every module here is imported and registers itself with
:func:`harness.report.base.section` (order, key, numbered title)."""
