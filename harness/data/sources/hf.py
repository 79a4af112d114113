"""Source ``hf``: any hub id (``org/name``) or local checkpoint dir in ``model.name_or_path``, used as is.

Offline (the default), a hub id must already be in the Hugging Face cache; set ``HF_HUB_OFFLINE=0`` to
download it on first use.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from harness.core.registry import BadValue
from harness.data.sources import Source, is_checkpoint, local_config, register

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # org/name, the form huggingface_hub accepts
VALID = "a local checkpoint dir (config.json + *.safetensors) or a hub id org/name"


@register("hf")
class HuggingFace(Source):
    @classmethod
    def checkpoint(cls, cfg: DictConfig) -> Path | str:
        cls.check(cfg)
        return cfg.name_or_path

    @classmethod
    def check(cls, cfg: DictConfig) -> None:
        ref = cfg.get("name_or_path")
        if not ref or not isinstance(ref, str):
            raise BadValue("model.name_or_path", ref, VALID)
        path = Path(ref).expanduser()
        if path.exists():
            if not (path.is_dir() and is_checkpoint(path)):
                raise BadValue("model.name_or_path", ref, f"{VALID}: {path} holds no checkpoint")
            return
        # Not on disk: only the org/name form can be a hub id; anything path-like (/abs, ./rel, a/b/c) is a
        # local dir that does not exist.
        if ref.startswith((".", "/", "~")) or not HUB_ID.match(ref):
            raise BadValue("model.name_or_path", ref, f"{VALID}: {path} does not exist")
        if offline() and not cached(ref):
            raise BadValue("model.name_or_path", ref, f"{VALID}: hub id not in the local cache and HF_HUB_OFFLINE "
                                                      "is set (HF_HUB_OFFLINE=0 downloads it)")


    @classmethod
    def architecture(cls, cfg: DictConfig) -> Any | None:
        return local_config(cfg.name_or_path)


def offline() -> bool:
    import os

    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


def cached(repo_id: str) -> bool:
    """Whether the hub id's config is in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
