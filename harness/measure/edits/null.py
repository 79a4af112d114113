"""The null of every edit: a random update of the same shape and Frobenius norm as the edited one."""

from __future__ import annotations

import torch

from harness.measure.edits import Site, edit, is_int
from harness.measure.gradsim import name_seed


@edit("random_like", seed=is_int(0))
def random_like(delta: torch.Tensor, w0: torch.Tensor, where: Site, *, seed: int = 0, tag: str = "") -> torch.Tensor:
    """T(ΔW) = ‖ΔW‖_F · G/‖G‖_F, G i.i.d. standard Gaussian of ΔW's shape, drawn from a generator seeded by
    (seed, ``tag``, the matrix's name): the random-update null of DESIGN.md. Surgery applies it to each edit's
    T(ΔW) (``tag`` = the edit's name), so the null keeps the edit's norm matrix by matrix; 0 stays 0."""
    return gaussian(delta.shape, float(torch.linalg.vector_norm(delta)), seed, f"{tag}:{where.name}").to(delta.device)


def gaussian(shape: tuple[int, ...] | torch.Size, norm: float, seed: int, key: str) -> torch.Tensor:
    """``norm`` · G/‖G‖_F (float64, on the CPU), G i.i.d. standard Gaussian from a generator seeded by
    (``seed``, ``key``); norm 0 gives 0."""
    if norm == 0:
        return torch.zeros(shape, dtype=torch.float64)
    gen = torch.Generator().manual_seed(name_seed(seed, key))
    g = torch.randn(shape, generator=gen, dtype=torch.float64)
    return g * (norm / torch.linalg.vector_norm(g))
