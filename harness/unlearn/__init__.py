"""Unlearnability: pass-rate estimation, rollout ledger, classification, gradient similarity."""
