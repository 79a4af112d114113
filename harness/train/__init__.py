"""Stage 2, train: the adapters (:mod:`.adapters`), the objectives (:mod:`.objectives`), the format warm-up, the
prompt filter, the trained model's ΔW (:mod:`.trained`) and vLLM's weight sync. Imports core and data."""
