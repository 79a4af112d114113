"""The entry points and their plumbing: ``harness train`` (:mod:`.run`, Hydra), ``harness analyze``
(:mod:`.analyze`), ``harness bench`` (:mod:`.bench`), argument handling (:mod:`.cli`), the checks before launch
(:mod:`.validate`), job slots, W&B runs and the sweep callback. The only stage that may import every other."""
