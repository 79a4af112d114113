"""Shared fixtures: an isolated cache and output root, and composing the real Hydra config in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CONF = str(ROOT / "harness" / "conf")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")


@pytest.fixture(scope="session", autouse=True)
def harness_cache(tmp_path_factory) -> Path:
    """One cache for the whole session (tiny checkpoints are built once), never the user's."""
    path = Path(os.environ.get("HARNESS_TEST_CACHE") or tmp_path_factory.mktemp("cache"))
    os.environ["HARNESS_CACHE"] = str(path)
    return path


def compose(*overrides: str):
    """The resolved config `python -m harness.run <overrides>` would see (without Hydra's runtime keys)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides))


def write_digits(path: Path, n: int) -> None:
    """A jsonl task whose prompts name their single-digit answer ("Say the digit 3 (1)" -> 3)."""
    import json

    with path.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({"prompt": f"Say the digit {(3 * i) % 10} ({i})", "answer": str((3 * i) % 10)}) + "\n")


def warm_digits(n: int, path: str | Path = "digits.jsonl") -> list[str]:
    """Overrides that start the tiny model from a format warm-up on the digits task at ``path`` (n rows; a
    relative path is read from the run's cwd).

    The random tiny model writes random characters; the scorer counts only a standalone number, which such a
    line holds ~1% of the time, so a test that needs rewards would see none. 80 steps of lr 1e-2 (~7 s, cached)
    make it answer a digit ~40% of the time (measured: 20 steps 9%, 60 steps 20%, 100 steps 68%).
    """
    return ["model.warmup.enabled=true", "model.warmup.steps=80", "model.warmup.lr=0.01",
            "model.warmup.task.name=digits", "model.warmup.task.kind=jsonl", f"+model.warmup.task.path={path}",
            "~model.warmup.task.dataset", "~model.warmup.task.common", "~model.warmup.task.mix",
            f"model.warmup.task.n_train={n}"]


def run_cli(*args: str, out: Path, timeout: int = 600, **env) -> subprocess.CompletedProcess:
    """`python -m harness.run ARGS` in a subprocess with outputs under ``out``."""
    e = {**os.environ, "HARNESS_OUT": str(out), **env}
    return subprocess.run([sys.executable, "-m", "harness.launch.run", *args], capture_output=True, text=True,
                          timeout=timeout, env=e, cwd=ROOT)


@pytest.fixture(autouse=True)
def one_thread():
    """Tests run torch on one thread: their matrices are small, and on a loaded 2-core machine thread
    hand-offs cost more than the work."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_base(harness_cache):
    """Path of the tiny model's checkpoint."""
    from harness.data.models import source_dir

    return source_dir(compose("model=tiny").model)


def write_run(sweep: Path, overrides: list[str], cfg: dict | None = None, choices: dict | None = None,
              record: dict | None = None, files: dict | None = None) -> Path:
    """A run directory as ``harness train`` writes it: ``.hydra/{overrides,config,hydra}.yaml``, ``run.json``
    (done unless ``record`` says otherwise) and any artifact by name (text as is, anything else as JSON). The
    adapter, objective and seed come from ``overrides``; ``cfg`` and ``choices`` add to the config and to Hydra's
    group choices."""
    from harness.core.overrides import job_dir_name

    job = sweep / job_dir_name(overrides)
    (job / ".hydra").mkdir(parents=True)
    ov = dict(o.split("=", 1) for o in overrides)
    group = {"adapter": ov.get("adapter", "lora"), "objective": ov.get("objective", "sft")}
    seed = int(ov.get("seed", 0))
    config = {"seed": seed, "adapter": {"name": group["adapter"]}, "objective": {"name": group["objective"]}}
    for key, value in (cfg or {}).items():
        config[key] = {**config[key], **value} if isinstance(config.get(key), dict) else value
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (job / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"runtime": {"choices": {
        **group, **(choices or {})}}}}))
    (job / "run.json").write_text(json.dumps({"status": "done", "reason": None, "seed": seed, **(record or {})}))
    for name, content in (files or {}).items():
        (job / name).write_text(content if isinstance(content, str) else json.dumps(content))
    return job
