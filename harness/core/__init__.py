"""Core: what every stage uses and nothing of the pipeline: the on-disk store and caches, the run record, the
plug-in registry, statistics, linear algebra, the analyzed-weights rule, and the process group."""
