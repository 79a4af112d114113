"""Source ``tiny``: a Llama-architecture model built from ``model.tiny`` (seeded) with a character-level
tokenizer built in code; no download. Used by the tests and quick sweeps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from harness.core.registry import BadValue
from harness.core.store import settings_hash
from harness.data.sources import Source, register

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


@register("tiny")
class Tiny(Source):
    @classmethod
    def checkpoint(cls, cfg: DictConfig) -> Path:
        from harness.data.models import cached_checkpoint

        return cached_checkpoint(f"tiny-{settings_hash(cfg.tiny)}", lambda out: build(cfg, out))

    @classmethod
    def check(cls, cfg: DictConfig) -> None:
        t = cfg.tiny
        for key in ("hidden_size", "intermediate_size", "num_layers", "num_heads", "num_kv_heads", "max_positions"):
            v = t.get(key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise BadValue(f"model.tiny.{key}", v, "an integer >= 1")
        if t.hidden_size % t.num_heads:
            raise BadValue("model.tiny.num_heads", t.num_heads, f"a divisor of hidden_size {t.hidden_size}")
        if t.num_heads % t.num_kv_heads:
            raise BadValue("model.tiny.num_kv_heads", t.num_kv_heads, f"a divisor of num_heads {t.num_heads}")

    @classmethod
    def architecture(cls, cfg: DictConfig) -> Any:
        return tiny_config(cfg)


def tiny_config(cfg: DictConfig, tok: Any | None = None) -> Any:
    """The Llama config ``cfg.tiny`` describes."""
    from transformers import LlamaConfig

    tok = tok or build_tiny_tokenizer()
    t = cfg.tiny
    return LlamaConfig(
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


def build(cfg: DictConfig, out: Path) -> Path:
    """A randomly initialised Llama model from ``cfg.tiny`` (seeded), saved as a checkpoint."""
    import torch
    from transformers import LlamaForCausalLM

    from harness.data.models import save_checkpoint

    tok = build_tiny_tokenizer()
    torch.manual_seed(cfg.tiny.init_seed)
    model = LlamaForCausalLM(tiny_config(cfg, tok))
    return save_checkpoint(model, tok, out)
