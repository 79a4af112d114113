"""The model loader. Every model source (:mod:`harness.data.sources`: ``tiny``, ``smollm2_gguf``, ``hf``, ...)
resolves to a local Hugging Face checkpoint directory in the cache (or a hub id), so that runs, the analyzer
and TRL's reference model all load the same weights from disk, offline.

:func:`load_model` is the one way a checkpoint is loaded; :func:`load_base` loads a model config's base (its
resolved checkpoint: the source, or the format warm-up of :mod:`harness.train.warmup`, which trains).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from harness.core import dist
from harness.core.store import cache_lock, cache_root, settings_hash
from harness.data.sources import DTYPE_NAMES, SOURCES, ModelSourceError, is_checkpoint

__all__ = ["DTYPES", "ModelSourceError", "cache_lock", "cache_root", "cached_checkpoint", "device_for",
           "is_checkpoint", "load_base", "load_model", "module_names", "save_checkpoint", "settings_hash",
           "source_dir", "torch_dtype"]

DTYPES = {name: getattr(torch, name) for name in DTYPE_NAMES}


def save_checkpoint(model: torch.nn.Module, tokenizer: Any, out: Path) -> Path:
    """Save model + tokenizer atomically (write to a temp dir, then rename)."""
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def cached_checkpoint(name: str, build: Callable[[Path], Any]) -> Path:
    """``cache_root()/models/<name>``, built once by ``build(out)`` under a lock (parallel jobs wait)."""
    out = cache_root() / "models" / name
    if not is_checkpoint(out):
        out.parent.mkdir(parents=True, exist_ok=True)
        with cache_lock(out.name):
            if not is_checkpoint(out):
                build(out)
    return out


def source_dir(cfg: DictConfig) -> Path | str:
    """The checkpoint a model config names, before warm-up: a cache dir, or a hub id / local dir for ``hf``."""
    return SOURCES.get(cfg.source).checkpoint(cfg)


def module_names(cfg: DictConfig) -> dict[str, type] | None:
    """Name -> class of every module of the model ``cfg`` names, from its architecture alone (built on the
    meta device: no weights are read); None when the source cannot tell without building or downloading."""
    try:
        arch = SOURCES.get(cfg.source).architecture(cfg)
        if arch is None:
            return None
        from transformers import AutoModelForCausalLM

        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(arch)
    except Exception:  # an architecture transformers cannot build here (e.g. remote code): no check before launch
        return None
    return {name: type(m) for name, m in model.named_modules() if name}


def torch_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; valid: {', '.join(DTYPES)}")
    return DTYPES[name]


def load_model(path: Path | str, dtype: str = "float32", device: str = "cpu", fsdp: bool = False) -> tuple[Any, Any]:
    """Load (model, tokenizer) from a checkpoint dir or hub id; pads on the left for generation.

    ``fsdp``: shard the parameters over this run's processes as it loads (transformers' FSDP2,
    ``DistributedConfig(fsdp_size=world size)``: each rank reads only its shards; runs on CPUs with gloo too)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if fsdp:
        from transformers.distributed import DistributedConfig

        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch_dtype(dtype),
                                                     distributed_config=DistributedConfig(fsdp_size=dist.world_size()))
    else:
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch_dtype(dtype))
    if device != "cpu" and not fsdp:
        model = model.to(device)
    if not fsdp:
        from harness.data.sampling import remember

        remember(model, path)  # its weights are on disk: vLLM measurements may load them from there
    tok = AutoTokenizer.from_pretrained(str(path))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return model, tok


def load_base(model_cfg: DictConfig, base: Path | str, device: str | None = None,
              fsdp: bool = False) -> tuple[Any, Any]:
    """(model, tokenizer) of the base checkpoint ``base`` (:func:`harness.train.warmup.resolve_base` of
    ``model_cfg``) in the config's dtype, on the config's device unless ``device`` is given (``fsdp``: sharded
    over the run's processes, see :func:`load_model`). Every run-time base load goes here."""
    return load_model(base, model_cfg.get("dtype", "float32"), device or device_for(model_cfg), fsdp=fsdp)


def device_for(cfg: DictConfig) -> str:
    """``auto`` picks CUDA when present (this rank's GPU when several processes run), else CPU."""
    return dist.device(cfg.get("device", "auto"))
