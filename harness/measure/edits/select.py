"""Edits that keep ΔW in some matrices and drop it in the others: a range of layers, or one module type."""

from __future__ import annotations

import torch

from harness.measure.edits import Param, Site, edit, is_num


@edit("layers", lo=is_num(0.0, 1.0), hi=is_num(0.0, 1.0))
def layers(delta: torch.Tensor, w0: torch.Tensor, where: Site, *, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    """T(ΔW) = ΔW in the decoder layers i (0-based, of L) with lo·L ≤ i < hi·L, else 0; also 0 in matrices
    outside the layers (embeddings). ``lo=0, hi=0.25``: the first quarter of the depth."""
    keep = where.layer is not None and lo * where.depth <= where.layer < hi * where.depth
    return delta.clone() if keep else torch.zeros_like(delta)


@edit("module", kind=Param(lambda v: v in ("attn", "mlp"), "attn | mlp"))
def module(delta: torch.Tensor, w0: torch.Tensor, where: Site, *, kind: str) -> torch.Tensor:
    """T(ΔW) = ΔW in the attention (q, k, v, o) or the MLP (gate, up, down) projections only, else 0."""
    return delta.clone() if where.kind == kind else torch.zeros_like(delta)
