"""Small linear-algebra leaf, one definition each: batched SVD from a Gram matrix, the principal mask of
*The Path Not Taken*, and principal angles between subspaces.

A leaf module (imports nothing from the harness): the sparse adapter (training), the eNTK and the geometry
analyzer all use these functions, so a mask or an angle means the same thing wherever it is computed.

Why a Gram matrix. All singular values of W (m×n) are the square roots of the eigenvalues of the Gram
matrix of the smaller side (W Wᵀ or WᵀW), and its top eigenvectors are the top singular vectors of that
side (the other side is W·x/σ). With the Gram product and ``eigh`` in float64 the eigenvalues carry an
absolute error ~1e-16·σ_max², so every σ_i is accurate to ~1e-8·σ_max, far below what the metrics resolve.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch


class Decomp(NamedTuple):
    """Singular values (descending, all of them) and top-K left/right singular vectors, batched."""

    S: torch.Tensor  # (B, min(m, n))
    U: torch.Tensor | None  # (B, m, K)
    V: torch.Tensor | None  # (B, n, K)


GRAM_BLOCK = 1 << 21  # entries of a batch per float64 block of the Gram product: 16 MiB, large enough for BLAS


def gram(w: torch.Tensor, left: bool | None = None) -> torch.Tensor:
    """Gram matrix of each matrix in the batch (float64 in, float64 out), on w's device: W Wᵀ when ``left``,
    else Wᵀ W; by default of the smaller side."""
    m, n = w.shape[-2:]
    left = m <= n if left is None else left
    if w.device.type == "cpu":
        # numpy recognizes A·Aᵀ / Aᵀ·A and calls BLAS syrk (half the flops): measured 2x faster than torch's
        # general product on CPU, and the Grams are a third of the analyzer's time.
        a = w.detach().numpy()
        at = a.swapaxes(-1, -2)
        return torch.from_numpy(np.matmul(a, at) if left else np.matmul(at, a))
    return w @ w.mT if left else w.mT @ w


def values_from_eigs(lam: torch.Tensor) -> torch.Tensor:
    """σ (descending) from Gram eigenvalues (ascending); round-off can make the smallest slightly negative."""
    return lam.flip(-1).clamp_min(0).sqrt()


def gram_decomp(w: torch.Tensor, k: int = 0, add: torch.Tensor | None = None, block: int = GRAM_BLOCK) -> Decomp:
    """All singular values of each matrix W of the batch and, if ``k`` > 0, its top-k singular vectors, from
    the float64 Gram of its smaller side. ``w`` may be float32 or float64; with ``add``, W = w + add, summed in
    w's dtype (a tuned float32 matrix as W0 + ΔW). The Gram is accumulated over blocks of the larger side of
    at most ``block`` entries, each widened to float64 in turn, so no float64 copy of a large W is held."""
    bsz, m, n = w.shape
    tall = m > n  # the Gram is WᵀW (n×n) over row blocks, else W Wᵀ (m×m) over column blocks
    small, large = (n, m) if tall else (m, n)
    step = max(1, block // max(1, bsz * small))
    cuts = [slice(j, min(large, j + step)) for j in range(0, large, step)]

    def part(sl: slice) -> torch.Tensor:
        x = w[:, sl] if tall else w[:, :, sl]
        if add is not None:
            x = x + (add[:, sl] if tall else add[:, :, sl])
        return x.double()

    g = gram(part(cuts[0]), left=not tall)
    for sl in cuts[1:]:
        g += gram(part(sl), left=not tall)
    if k <= 0:
        return Decomp(values_from_eigs(torch.linalg.eigvalsh(g)), None, None)
    lam, vec = torch.linalg.eigh(g)
    del g
    s = values_from_eigs(lam)
    x = vec[..., -k:].flip(-1)  # top-k eigenvectors of the Gram = top-k vectors of the smaller side
    # The other side: W x / σ, block by block. σ is clamped so that a rank-deficient W gives finite (if
    # arbitrary) vectors.
    scale = s[..., None, :k].clamp_min(torch.finfo(s.dtype).tiny)
    y = torch.empty(bsz, large, x.shape[-1], dtype=torch.float64, device=x.device)
    for sl in cuts:
        y[:, sl] = (part(sl) @ x if tall else part(sl).mT @ x) / scale
    return Decomp(s, y, x) if tall else Decomp(s, x, y)


# --- the principal mask (DESIGN.md: top-α fraction of |rank-k reconstruction of W0|) ----------------------


def rank_k_scores(decomp: Decomp, k: int) -> torch.Tensor:
    """|rank-k reconstruction| entrywise, in float32, from a decomposition (batched). Every principal mask
    (the analyzer's cached threshold, each run's mask, the sparse adapter's) comes from this one product."""
    us = (decomp.U[..., :k] * decomp.S[..., None, :k]).float()
    return (us @ decomp.V[..., :k].float().mT).abs_()


def principal_scores(w: torch.Tensor, k: int) -> torch.Tensor:
    """|rank-k reconstruction of W| for one matrix or a batch, on W's device (float64 Gram decomposition, as
    the analyzer's base cache does it, so a mask built here and one built there agree)."""
    batch = w.detach().to(torch.float64)
    single = batch.ndim == 2
    scores = rank_k_scores(gram_decomp(batch[None] if single else batch, k), k)
    return scores[0] if single else scores


def principal_threshold(scores: torch.Tensor, alpha: float) -> torch.Tensor:
    """Per matrix, the round(α·mn)-th largest score (at least 1 entry)."""
    flat = scores.flatten(-2)
    top = max(1, round(alpha * flat.shape[-1]))
    kth = flat.shape[-1] - top  # 0-based rank from the bottom
    if flat.device.type == "cpu":  # numpy's introselect: the same value, measured 2.8x faster than kthvalue
        part = np.partition(flat.detach().numpy(), kth, axis=-1)[..., kth]
        return torch.from_numpy(np.array(part))
    return torch.kthvalue(flat, kth + 1, dim=-1).values


def principal_mask(scores: torch.Tensor, alpha: float, threshold: torch.Tensor | None = None) -> torch.Tensor:
    """The principal mask: entries whose score is at least the round(α·mn)-th largest, i.e. the top-α
    fraction (exactly α·mn entries unless scores tie at the threshold). ``threshold``: a cached
    :func:`principal_threshold` of the same scores."""
    thr = principal_threshold(scores, alpha) if threshold is None else threshold
    return scores >= thr[..., None, None]


# --- principal angles ----------------------------------------------------------------------------------


def principal_angles(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """All principal angles (degrees, ascending) between span(a) and span(b), both with k orthonormal
    columns (batched).

    cos θ_i are the singular values of aᵀb, sin θ_i those of b − a(aᵀb); the i-th smallest angle pairs the
    i-th largest cosine with the i-th smallest sine, and atan2 of the pair is accurate to ~1e-16 rad for
    small and large angles alike (arccos alone loses angles below ~1e-8 rad, arcsin those near 90°).
    """
    m = a.mT @ b
    cos = torch.linalg.svdvals(m).clamp(0.0, 1.0)  # descending: smallest angle first
    sin = torch.linalg.svdvals(b - a @ m)[..., : cos.shape[-1]].flip(-1).clamp(0.0, 1.0)  # ascending
    return torch.rad2deg(torch.atan2(sin, cos))
