"""Synthetic artifacts for tests and the bench: a low-rank + sparse ΔW, checkpoints and run dirs written in
the run artifact contract (``run.json``, ``.hydra/config.yaml``, ``delta.safetensors``)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file


def synthetic_delta(w0: torch.Tensor, gen: torch.Generator, rank: int = 8, density: float = 0.01,
                    scale: float = 1e-3) -> torch.Tensor:
    """A LoRA-like rank-``rank`` update plus a sparse one on a ``density`` share of entries; each part has
    Frobenius norm ``scale``·‖W0‖_F (fine-tuning updates are a small fraction of the weights)."""
    m, n = w0.shape
    w0 = w0.float()
    low = torch.randn(m, rank, generator=gen) @ torch.randn(rank, n, generator=gen)
    mask = torch.rand(m, n, generator=gen) < density
    sparse = torch.randn(m, n, generator=gen) * mask
    target = scale * w0.norm()
    return low * (target / low.norm()) + sparse * (target / sparse.norm().clamp_min(1e-30))


class MemoryDelta:
    """A ΔW held in memory (same interface as :class:`harness.geometry.sources.RunDelta`)."""

    def __init__(self, tensors: dict[str, torch.Tensor]):
        self.tensors = tensors

    @property
    def names(self) -> list[str]:
        return list(self.tensors)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.tensors[name].shape)

    def get(self, name: str) -> torch.Tensor:
        return self.tensors[name].float()

    def stamp(self) -> list[int]:
        return [id(self.tensors)]


def write_checkpoint(out: Path, tensors: dict[str, torch.Tensor]) -> Path:
    """A minimal checkpoint dir: ``model.safetensors`` + a ``config.json``."""
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps({"model_type": "synthetic"}))
    return out


def write_run(job_dir: Path, base_dir: Path, delta: dict[str, torch.Tensor], adapter: str = "full",
              objective: str = "sft", seed: int = 0, status: str = "done") -> Path:
    """A finished run dir as ``harness.run`` writes it (only what the analyzer reads)."""
    (job_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    (job_dir / ".hydra" / "config.yaml").write_text(
        f"seed: {seed}\nadapter:\n  name: {adapter}\nobjective:\n  name: {objective}\n")
    save_file({k: v.contiguous() for k, v in delta.items()}, str(job_dir / "delta.safetensors"),
              metadata={"base_dir": str(base_dir), "adapter": adapter, "objective": objective})
    (job_dir / "run.json").write_text(json.dumps({
        "status": status, "reason": None, "seed": seed, "adapter": adapter, "objective": objective,
        "base_dir": str(base_dir), "timings": {}}))
    return job_dir
