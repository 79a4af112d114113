"""Measure: what a trained model does, after training, on the main process (one writer): downstream accuracy
(lm-eval), eNTK rotation, pass@k, KL to the base, pass rates; and what pass rates rest on: the RLVR rollout
ledger, the learnability classes and the gradient sketches.

Each measurement is one module here registered with :func:`harness.measure.base.measurement` (its config block,
its artifact, its order); :func:`harness.measure.base.run_measurements` runs the enabled ones in order.
"""
