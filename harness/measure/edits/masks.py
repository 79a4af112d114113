"""Edits by W0's principal mask (*The Path Not Taken*; DESIGN.md): M = the top-α fraction of the entries of
|rank-k reconstruction of W0| (:func:`harness.core.linalg.principal_mask`, the analyzer's definition; k = 16,
α = 0.2 as the analyzer's defaults)."""

from __future__ import annotations

import torch

from harness.measure.edits import Site, edit, is_int, is_num


def mask(w0: torch.Tensor, where: Site, k: int, alpha: float) -> torch.Tensor:
    """W0's principal mask (bool, m×n)."""
    from harness.core.linalg import principal_mask, rank_k_scores
    from harness.measure.edits.spectral import w0_decomp

    # = principal_mask(principal_scores(W0, k), alpha), on W0's decomposition shared with the other edits (the
    # mask itself is rebuilt: one product, and no m×n memo per matrix)
    return principal_mask(rank_k_scores(w0_decomp(w0, where, k), k)[0], alpha)


@edit("principal_mask", k=is_int(1), alpha=is_num(0.0, 1.0))
def principal_only(delta: torch.Tensor, w0: torch.Tensor, where: Site, *, k: int = 16,
                   alpha: float = 0.2) -> torch.Tensor:
    """T(ΔW) = ΔW ⊙ M: the update's entries on W0's principal mask only."""
    return delta * mask(w0, where, min(k, *delta.shape), alpha)


@edit("off_mask", k=is_int(1), alpha=is_num(0.0, 1.0))
def off_mask(delta: torch.Tensor, w0: torch.Tensor, where: Site, *, k: int = 16, alpha: float = 0.2) -> torch.Tensor:
    """T(ΔW) = ΔW ⊙ (1 − M): the entries off the mask (principal_mask + off_mask = ΔW exactly)."""
    return delta * ~mask(w0, where, min(k, *delta.shape), alpha)
