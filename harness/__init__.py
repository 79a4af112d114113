"""harness: compare how SFT and RLVR move the weights of language models, per adapter."""

from pathlib import Path

__version__ = "0.1.0"

# The Hydra config tree ships inside the package, so a non-editable install and any working directory work.
CONF_DIR = Path(__file__).resolve().parent / "conf"
