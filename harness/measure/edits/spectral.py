"""Edits defined by singular subspaces: rank-k truncation of ΔW, ΔW projected onto / off W0's top-k singular
subspaces, and W1's top singular directions restored to W0's (arXiv 2509.12235). All through the project's one
decomposition (:func:`harness.core.linalg.gram_decomp`)."""

from __future__ import annotations

import math

import torch

from harness.measure.edits import Param, Site, edit, is_int, is_num


def top_side(x: torch.Tensor, r: int) -> torch.Tensor:
    """X's top-r singular vectors of its smaller side (orthonormal columns: the Gram's eigenvectors; right when
    m > n, else left), 0 < r < min(m, n)."""
    from harness.core.linalg import gram_decomp

    m, n = x.shape
    d = gram_decomp(x[None], r)
    return d.V[0] if m > n else d.U[0]


def project(x: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
    """X projected onto the span of ``side`` (orthonormal columns of X's smaller side): X S Sᵀ or S Sᵀ X."""
    return (x @ side) @ side.mT if x.shape[0] > x.shape[1] else side @ (side.mT @ x)


def truncate(x: torch.Tensor, r: int, side: torch.Tensor | None = None) -> torch.Tensor:
    """X's best rank-r approximation (Eckart–Young): X projected onto its top-r singular vectors of the smaller
    side, X V_r V_rᵀ (m > n) or U_r U_rᵀ X. The projection needs only those orthonormal vectors (the Gram's
    eigenvectors), not the other side's, so it is exact to round-off even where σ_r is tiny or 0.
    r = 0 gives 0 and r ≥ min(m, n) gives X itself; ``side``: X's :func:`top_side` when already known."""
    r = min(int(r), *x.shape)
    if r == 0:
        return torch.zeros_like(x)
    if r == min(x.shape):
        return x.clone()
    return project(x, top_side(x, r) if side is None else side)


def w0_decomp(w0: torch.Tensor, where: Site, k: int):
    """W0's :func:`~harness.core.linalg.gram_decomp` with its top-k vectors (a batch of one), once per matrix
    and k (``where.memo``): the decomposition :func:`~harness.core.linalg.principal_scores` makes."""
    from harness.core.linalg import gram_decomp

    key = ("decomp", k)
    if key not in where.memo:
        where.memo[key] = gram_decomp(w0[None], k)
    return where.memo[key]


@edit("rank", k=is_int(0))
def rank(delta: torch.Tensor, w0: torch.Tensor, where: Site, *, k: int) -> torch.Tensor:
    """T(ΔW) = ΔW's rank-k truncation (k = 0: nothing of ΔW)."""
    return truncate(delta, k)


def onto(delta: torch.Tensor, w0: torch.Tensor, where: Site, k: int) -> torch.Tensor:
    """U_k U_kᵀ ΔW V_k V_kᵀ with U_k, V_k W0's top-k left / right singular vectors."""
    k = min(int(k), *delta.shape)
    if k == 0:
        return torch.zeros_like(delta)
    d = w0_decomp(w0, where, k)
    u, v = d.U[0], d.V[0]
    return u @ ((u.mT @ delta @ v) @ v.mT)


@edit("onto_topk", k=is_int(1))
def onto_topk(delta: torch.Tensor, w0: torch.Tensor, where: Site, *, k: int = 16) -> torch.Tensor:
    """T(ΔW) = U_k U_kᵀ ΔW V_k V_kᵀ: the block of ΔW inside W0's top-k left and right singular subspaces."""
    return onto(delta, w0, where, k)


@edit("off_topk", k=is_int(1))
def off_topk(delta: torch.Tensor, w0: torch.Tensor, where: Site, *, k: int = 16) -> torch.Tensor:
    """T(ΔW) = ΔW − U_k U_kᵀ ΔW V_k V_kᵀ: everything of ΔW but that block (onto_topk + off_topk = ΔW)."""
    return delta - onto(delta, w0, where, k)


@edit("restore_top", f=is_num(0.0, 1.0))
def restore_top(delta: torch.Tensor, w0: torch.Tensor, where: Site, *, f: float = 0.2) -> torch.Tensor:
    """W1's top singular directions replaced by W0's: with W1 = W0 + ΔW, r = ⌈f·min(m, n)⌉ and P_r(X) X's
    rank-r truncation, the edited weight is W1 − P_r(W1) + P_r(W0), so T(ΔW) = ΔW − P_r(W1) + P_r(W0).
    f = 0 keeps ΔW; f = 1 gives 0 (P of full rank is X itself). arXiv 2509.12235 restores the top ~20 %."""
    r = math.ceil(f * min(delta.shape) - 1e-9)  # 1e-9: f·min(m, n) that is an integer up to float round-off
    if r == 0:
        return delta.clone()
    if r >= min(delta.shape):
        return delta - (w0 + delta) + w0
    key = ("side", r)  # W0's top-r vectors, not P_r(W0) itself: a memo of every matrix's size would add a model
    if key not in where.memo:
        where.memo[key] = top_side(w0, r)
    return delta - truncate(w0 + delta, r) + truncate(w0, r, where.memo[key])


@edit("scale", c=Param(lambda v: isinstance(v, int | float) and not isinstance(v, bool), "a number"))
def scale(delta: torch.Tensor, w0: torch.Tensor, where: Site, *, c: float) -> torch.Tensor:
    """T(ΔW) = c·ΔW: c = 1 is the run itself (W0 + ΔW rebuilt from delta.safetensors), c = 0 the base."""
    return delta * float(c)
