"""Format warm-up: a short full SFT on the task's prompt format, so that the base answers in the expected
format and training prompts spread over pass rates (the raw SmolLM2 scores ~0.13 on 1-digit sums).

The warmed checkpoint is cached by a hash of the source and the warm-up settings; every run of every
sweep that names the same settings starts from it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from harness.models import cache_lock, cache_root, is_checkpoint, load_model, save_checkpoint, settings_hash


def warmed_base(src: Path | str, model_cfg: DictConfig, warm: DictConfig) -> Path:
    """Return the cached warmed checkpoint, training it first if needed."""
    # Cache-built sources are named by content (tiny-<hash>, smollm2-...): key on the name, so the key does not
    # depend on where HARNESS_CACHE lives; a hub id or user dir is keyed on its full path.
    ident = Path(str(src)).name if Path(str(src)).parent.parent == cache_root() else str(src)
    key = settings_hash({"source": ident, "warmup": OmegaConf.to_container(warm, resolve=True)})
    out = cache_root() / "models" / f"{Path(str(src)).name}-warm-{key}"
    if is_checkpoint(out):
        return out
    with cache_lock(out.name):
        if not is_checkpoint(out):
            train_warmup(src, model_cfg, warm, out)
    return out


def train_warmup(src: Path | str, model_cfg: DictConfig, warm: DictConfig, out: Path) -> Path:
    from harness.models import device_for
    from harness.objectives import sft
    from harness.tasks import build_task

    t0 = time.time()
    print(f"[harness] format warm-up: {warm.steps} steps of full SFT -> {out} (once)", flush=True)
    device = device_for(model_cfg)
    model, tok = load_model(src, model_cfg.get("dtype", "float32"), device)
    # The warm-up task uses its own seed, so its prompts are not the sweep's training prompts.
    task = build_task(warm.task)
    work = out.with_name(out.name + ".work")
    work.mkdir(parents=True, exist_ok=True)
    sft.train(model, tok, task, warm, lr=warm.lr, seed=warm.get("seed", 0), out_dir=work, device=device,
              label="warm-up")
    model.config._name_or_path = str(out)
    save_checkpoint(model.cpu(), tok, out)
    (out / "warmup.json").write_text(json.dumps({
        "source": str(src), "settings": OmegaConf.to_container(warm, resolve=True),
        "seconds": round(time.time() - t0, 1)}, indent=1))
    return out
