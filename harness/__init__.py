"""harness: compare how SFT and RLVR move the weights of language models, per adapter."""

__version__ = "0.1.0"
