"""Format warm-up: a short full SFT on the task's prompt format, so that the base answers in the expected
format and training prompts spread over pass rates (the raw SmolLM2 scores ~0.13 on 1-digit sums).

:func:`resolve_base` is the base every run starts from: the source, or its warm-up, cached by a hash of the source
and the warm-up settings, so every run of every sweep that names the same settings starts from it. When a run
has several processes the warm-up is built in a single-process child, ``python -m harness.train.warmup <json>``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from harness.core import dist
from harness.core.store import atomic_write_json, cache_root, settings_hash
from harness.data.models import cached_checkpoint, device_for, load_model, save_checkpoint, source_dir
from harness.data.tasks import build_task
from harness.train.objectives import sft


def format_warmup(model: Any, tok: Any, warm: DictConfig, device: str, work_dir: Path) -> None:
    """Train ``model`` in place for ``warm.steps`` steps of full SFT on ``warm.task``."""
    # The warm-up task uses its own seed, so its prompts are not the sweep's training prompts.
    task = build_task(warm.task)
    work_dir.mkdir(parents=True, exist_ok=True)
    sft.train(model, tok, task, warm, lr=warm.lr, seed=warm.get("seed", 0), out_dir=work_dir, device=device,
              label="warm-up")


def resolve_base(cfg: DictConfig) -> Path | str:
    """The base checkpoint every run starts from: the source, or its cached format warm-up."""
    src = source_dir(cfg)
    warm = cfg.get("warmup")
    if not warm or not warm.get("enabled", False):
        return src
    return warmed_base(src, cfg, warm)


def warmed_base(src: Path | str, model_cfg: DictConfig, warm: DictConfig) -> Path:
    """The cached warmed checkpoint of ``src``, trained first (:func:`format_warmup`) if needed."""
    # Cache-built sources are named by content (tiny-<hash>, smollm2-...): key on the name, so the key does not
    # depend on where HARNESS_CACHE lives; a hub id or user dir is keyed on its full path.
    ident = Path(str(src)).name if Path(str(src)).parent.parent == cache_root() else str(src)
    key = settings_hash({"source": ident, "warmup": OmegaConf.to_container(warm, resolve=True)})

    def build(out: Path) -> None:
        if dist.active():
            # The warm-up trains: in this process TRL's trainer would join the run's process group and wait
            # there for the other ranks, which wait for this cache (the cold-cache deadlock of issue 17). So it
            # is built in a child process outside the group; the other ranks wait for it (dist.main_first).
            import json
            import subprocess
            import sys

            spec = {"src": str(src), "model": OmegaConf.to_container(model_cfg, resolve=True), "out": str(out)}
            subprocess.run([sys.executable, "-m", "harness.train.warmup", json.dumps(spec)], check=True,
                           env=dist.single_process_env())
        else:
            build_warmed(src, model_cfg, out)

    return cached_checkpoint(f"{Path(str(src)).name}-warm-{key}", build)


def build_warmed(src: Path | str, model_cfg: DictConfig, out: Path) -> None:
    """Train the format warm-up of ``src`` (:func:`format_warmup`) and save it to ``out``."""
    warm = model_cfg.warmup
    t0 = time.time()
    print(f"[harness] format warm-up: {warm.steps} steps of full SFT -> {out} (once)", flush=True)
    device = device_for(model_cfg)
    model, tok = load_model(src, model_cfg.get("dtype", "float32"), device)
    format_warmup(model, tok, warm, device, out.with_name(out.name + ".work"))
    model.config._name_or_path = str(out)
    save_checkpoint(model.cpu(), tok, out)
    atomic_write_json(out / "warmup.json", {"source": str(src), "seconds": round(time.time() - t0, 1),
                                            "settings": OmegaConf.to_container(warm, resolve=True)})


if __name__ == "__main__":  # the warm-up's single-process child (warmed_base, on several processes)
    import json
    import sys

    spec = json.loads(sys.argv[1])
    build_warmed(spec["src"], OmegaConf.create(spec["model"]), Path(spec["out"]))
