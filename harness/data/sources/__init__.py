"""Model sources, registered by name and chosen by ``model.source``: each resolves a ``conf/model`` config to
a local checkpoint (or a hub id) before the optional format warm-up.

A new source is one module in this package registering a :class:`Source` plus one ``conf/model/<name>.yaml``
(``source: <name>``); modules here are discovered automatically. :mod:`harness.data.models` is the loader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from harness.core.registry import Registry


class ModelSourceError(RuntimeError):
    """A model source cannot be resolved (missing package, bad name); the message says how to fix it."""


class Source:
    """A model source. Subclasses implement :meth:`checkpoint` and, for settings that can be wrong,
    :meth:`check`."""

    @classmethod
    def checkpoint(cls, cfg: DictConfig) -> Path | str:
        """The checkpoint dir (built into the cache on first use) or a hub id."""
        raise NotImplementedError

    @classmethod
    def check(cls, cfg: DictConfig) -> None:
        """Raise :class:`harness.core.registry.BadValue` for a bad setting; cheap, builds and downloads nothing."""

    @classmethod
    def architecture(cls, cfg: DictConfig) -> Any | None:
        """The model's transformers config when it is known without building or downloading anything (so
        that settings naming its modules are checked before launch); None otherwise."""
        return None


# Dtype names a model is trained and a delta stored in (``model.dtype``, ``store_dtype``);
# :data:`harness.data.models.DTYPES` maps them to torch dtypes. Here, so that validation needs no torch import.
DTYPE_NAMES = ("float32", "bfloat16", "float16")

SOURCES: Registry[type[Source]] = Registry("model source", __name__)
register = SOURCES.register


def local_config(ref: str | Path) -> Any | None:
    """The transformers config of a local checkpoint dir, or of a hub id already in the local cache; None
    when neither (nothing is downloaded)."""
    from transformers import AutoConfig

    path = Path(ref).expanduser()
    if (path / "config.json").is_file():
        return AutoConfig.from_pretrained(str(path))
    try:
        return AutoConfig.from_pretrained(str(ref), local_files_only=True)
    except (OSError, ValueError):
        return None


def is_checkpoint(path: Path) -> bool:
    """A dir holding a Hugging Face config and safetensors weights."""
    return (path / "config.json").exists() and any(path.glob("*.safetensors"))
