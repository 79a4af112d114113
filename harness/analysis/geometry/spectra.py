"""Decompositions for the analyzer: batched σ / top-k singular vectors (from :mod:`harness.core.linalg`), the
randomized top-k with its bound, and the on-disk base-spectrum cache.

The Gram method (see :mod:`harness.core.linalg`): measured on 2 CPU cores, fp64 Gram + ``eigh`` (with vectors) of
a batch of 576×1536 matrices takes 0.65× the time of fp32 ``torch.linalg.svdvals`` (values only); ``eigvalsh``
alone 0.5×.

Top-k vectors of W1 = W0 + ΔW come either from the same exact ``eigh`` (default) or from a randomized
subspace iteration warm-started at W0's cached top singular vectors (``topk=randomized``), whose error is
bounded a posteriori (Wedin's sin-θ theorem, using the exact σ_{k+1}); a matrix whose bound exceeds the
tolerance falls back to the exact path, so the reported angles are always within the bound. It only pays off
with a clear spectral gap at k: on SmolLM2-135M σ_16/σ_17 ≈ 1.004-1.007, the bound is still 0.01-0.5° after
50 iterations, and every matrix falls back (measured), hence ``exact`` is the default.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from harness.analysis.geometry.sources import Checkpoint
from harness.core.linalg import (  # noqa: F401 (re-exported: the analyzer's decompositions)
    Decomp,
    gram,
    gram_decomp,
    principal_threshold,
    rank_k_scores,
    values_from_eigs,
)
from harness.core.store import atomic_path, atomic_write_json, cache_lock, cache_root

T = TypeVar("T")
R = TypeVar("R")
CACHE_VERSION = 2  # bump when the cached quantities change meaning (2: one file per matrix)


def randomized_topk(w: torch.Tensor, s_exact: torch.Tensor, warm_v: torch.Tensor | None, ks: list[int],
                    oversample: int = 8,  # Halko et al. recommend 5-10 extra columns
                    iters: int = 6, tol_deg: float = 1e-4,
                    seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top-max(ks) singular vectors of each W by subspace iteration (Halko, Martinsson & Tropp 2011,
    Alg. 4.4), the start block holding W0's top right singular vectors (``warm_v``) plus Gaussian columns.

    Returns (U, V, bound_deg): ``bound_deg`` bounds, per matrix, the largest principal angle between the
    computed and the exact top-k subspaces (left and right) for every k in ``ks``: Wedin's theorem,
    sin θ ≤ ‖W V̂ − Û Σ̂‖_F / (σ̂_k − σ_{k+1}), with σ_{k+1} exact (from ``s_exact``). Iterates until the bound
    is below ``tol_deg`` or ``iters`` is reached; the caller falls back to :func:`gram_decomp` where not.
    """
    bsz, m, n = w.shape
    big_k = max(ks)
    r = min(m, n)
    width = min(big_k + oversample, r)
    gen = torch.Generator(device=w.device).manual_seed(seed)
    omega = torch.randn(bsz, n, width, dtype=w.dtype, device=w.device, generator=gen)
    if warm_v is not None:
        j = min(width, warm_v.shape[-1])
        omega[..., :j] = warm_v[..., :j]
    q = torch.linalg.qr(w @ omega).Q
    bound = torch.full((bsz,), math.inf, dtype=w.dtype, device=w.device)
    for it in range(iters + 1):
        if it:  # one power iteration, re-orthonormalized on both sides for stability
            q = torch.linalg.qr(w @ torch.linalg.qr(w.mT @ q).Q).Q
        ub, sb, vbh = torch.linalg.svd(q.mT @ w, full_matrices=False)  # Rayleigh–Ritz on span(q)
        u, s, v = q @ ub[..., :big_k], sb[..., :big_k], vbh[..., :big_k, :].mT
        # With Rayleigh–Ritz, Wᵀû − σ̂v̂ = 0 exactly; the residual is W v̂ − σ̂ û, column by column.
        col2 = (w @ v - u * s[..., None, :]).pow(2).sum(-2).cumsum(-1)
        bound = torch.zeros_like(bound)
        for k in ks:
            if k >= r:  # the whole space: nothing to rotate, no error
                continue
            gap = s[..., k - 1] - s_exact[..., k]
            sin = torch.where(gap > 0, col2[..., k - 1].sqrt() / gap.clamp_min(1e-300), math.inf)
            bound = torch.maximum(bound, torch.rad2deg(torch.asin(sin.clamp(max=1.0))))
        if bool((bound <= tol_deg).all()):
            break
    return u, v, bound


def chunks(names: list[str], shape: tuple[int, ...], budget: int = 1 << 22) -> list[list[str]]:
    """Split same-shape names into batches of at most ``budget`` entries (4 Mi: 32 MB per fp64 copy)."""
    size = max(1, budget // max(1, math.prod(shape)))
    return [names[i:i + size] for i in range(0, len(names), size)]


def batch(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Stack same-shape matrices into a batch; a single one is viewed, not copied (a 7B MLP matrix is 0.2 GB)."""
    return tensors[0][None] if len(tensors) == 1 else torch.stack(tensors)


def by_shape(names: list[str], shape_of: Callable[[str], tuple[int, ...]]) -> dict[tuple[int, ...], list[str]]:
    groups: dict[tuple[int, ...], list[str]] = {}
    for n in names:
        groups.setdefault(tuple(shape_of(n)), []).append(n)
    return groups


def thr_key(name: str, k: int, alpha: float) -> str:
    return f"{name}::thr:k{k}:a{alpha:g}"


class SpectraCache:
    """W0's singular values, top-K singular vectors and principal-mask thresholds, for one base checkpoint,
    computed once and cached on disk under ``cache_root()/spectra/<weights hash>/``, one small safetensors
    file per matrix; every run of a sweep and every pair of a pair study from this base (and every later
    analysis) reuses them. Missing entries (a larger k, another α, more matrices) are computed on demand and
    merged in; writes are atomic and serialized by a lock across processes. Only the matrices of the batch
    being analysed are held in memory, so memory does not grow with the model."""

    _memory: dict[str, SpectraCache] = {}

    def __init__(self, ckpt: Checkpoint, device: str = "cpu"):
        self.ckpt, self.device = ckpt, device
        self.key = ckpt.weights_hash()
        self.dir = cache_root() / "spectra" / self.key
        self.file = self.dir / "meta.json"
        self.built_s = 0.0

    @classmethod
    def of(cls, ckpt: Checkpoint, device: str = "cpu") -> SpectraCache:
        """One instance per base per process."""
        key = ckpt.weights_hash()
        if key not in cls._memory:
            cls._memory[key] = cls(ckpt, device)
        cls._memory[key].device = device
        return cls._memory[key]

    @classmethod
    def clear_memory(cls) -> None:
        cls._memory.clear()

    def _valid(self) -> bool:
        try:
            return json.loads(self.file.read_text()).get("version") == CACHE_VERSION
        except (OSError, ValueError):
            return False

    def _path(self, name: str) -> Path:
        return self.dir / (name.replace("/", "%2F") + ".safetensors")

    def _header(self, name: str) -> dict[str, tuple[int, ...]]:
        """Stored entry keys of one matrix and their shapes (header only, no data); {} when absent."""
        try:
            with safe_open(str(self._path(name)), framework="pt") as fh:
                return {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
        except (OSError, ValueError, RuntimeError):  # absent or unreadable: rebuilt
            return {}

    def missing(self, names: list[str], ks_of: Callable[[str], list[int]], alpha: float) -> list[str]:
        if not self._valid():
            return list(names)
        out = []
        for n in names:
            head, ks = self._header(n), ks_of(n)
            u = head.get(f"{n}::U")
            if f"{n}::S" not in head or u is None or u[-1] < max(ks) or any(
                    thr_key(n, k, alpha) not in head for k in ks):
                out.append(n)
        return out

    def ensure(self, names: list[str], ks_of: Callable[[str], list[int]], alpha: float,
               progress: Callable[[int], None] | None = None, workers: int = 1) -> None:
        """Make sure every name has S, top-max(k) U/V and the α-thresholds for each of its k (``progress``
        is told how many matrices each built batch held; ``workers`` batches are built at once)."""
        if not self.missing(names, ks_of, alpha):
            return
        t0 = time.perf_counter()
        with cache_lock(f"spectra-{self.key}"):
            todo = self.missing(names, ks_of, alpha)  # another process may have built them meanwhile
            if todo and not self._valid():
                atomic_write_json(self.file, {"version": CACHE_VERSION, "checkpoint": str(self.ckpt.path)})
            batches = [chunk for shape, group in by_shape(todo, self.ckpt.shape).items()
                       for chunk in chunks(group, shape)]
            for n in run_batches(lambda chunk: self._build(chunk, ks_of, alpha), batches, workers):
                if progress:
                    progress(n)
        self.built_s += time.perf_counter() - t0

    def entries(self, names: list[str]) -> dict[str, dict[str, torch.Tensor]]:
        """The stored entries of ``names`` (read from their files; nothing is kept in memory afterwards)."""
        return {n: load_file(str(self._path(n))) if self._path(n).exists() else {} for n in names}

    def _build(self, chunk: list[str], ks_of: Callable[[str], list[int]], alpha: float) -> int:
        ks = ks_of(chunk[0])  # same shape, same ks
        held = self.entries(chunk)
        if all(f"{n}::U" in held[n] and held[n][f"{n}::U"].shape[-1] >= max(ks) for n in chunk):
            d = self.decomp(chunk, max(ks), held)
        else:
            w0 = batch([self.ckpt.get(n) for n in chunk]).to(self.device, torch.float32)
            d = gram_decomp(w0, max(ks))  # float64 Gram, widened block by block
            del w0
            for i, n in enumerate(chunk):
                held[n] = {f"{n}::S": d.S[i].cpu().contiguous(), f"{n}::U": d.U[i].cpu().contiguous(),
                           f"{n}::V": d.V[i].cpu().contiguous()}
        for k in ks:
            thr = principal_threshold(rank_k_scores(d, k), alpha).cpu()
            for i, n in enumerate(chunk):
                held[n][thr_key(n, k, alpha)] = thr[i].reshape(1).contiguous()
        for n in chunk:
            with atomic_path(self._path(n)) as tmp:
                save_file(held[n], str(tmp))
        return len(chunk)

    def decomp(self, names: list[str], k: int, held: dict | None = None) -> Decomp:
        """Stacked (S, U[:, :, :k], V[:, :, :k]) of ``names`` (same shape), float64 on the device
        (``held``: their :meth:`entries`, when already read)."""
        held = self.entries(names) if held is None else held

        def stack(suffix: str, cols: int | None = None) -> torch.Tensor:
            return torch.stack([held[n][f"{n}::{suffix}"][..., :cols] for n in names]).to(self.device)

        return Decomp(stack("S"), stack("U", k), stack("V", k))

    def thresholds(self, names: list[str], k: int, alpha: float, held: dict | None = None) -> torch.Tensor:
        held = self.entries(names) if held is None else held
        return torch.cat([held[n][thr_key(n, k, alpha)] for n in names]).to(self.device)


# --- running batches of matrices concurrently -------------------------------------------------------------


def cpu_count() -> int:
    """Cores this process may use (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def split_threads(workers: int) -> Iterator[None]:
    """Give each of ``workers`` concurrent batches cores/workers math threads (torch and numpy's BLAS), so the
    batches together use every core once; restored afterwards. Why: LAPACK's symmetric eigensolver barely
    gains from a second thread on matrices of a few thousand rows (measured on 2 cores: 0.17 s with one
    thread, 0.22 s with two, for an 896×896 Gram), while two single-threaded batches run side by side."""
    if workers <= 1:
        yield
        return
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    per = max(1, cpu_count() // workers)
    torch.set_num_threads(per)
    try:
        with threadpool_limits(per):
            yield
    finally:
        torch.set_num_threads(before)


def run_batches(fn: Callable[[T], R], batches: list[T], workers: int = 1) -> Iterator[R]:
    """``fn`` over ``batches`` in order, ``workers`` at a time (threads: torch and numpy release the GIL in
    their kernels); at most ``workers`` batches are in memory at once."""
    if workers <= 1 or len(batches) <= 1:
        yield from map(fn, batches)
        return
    with split_threads(workers), ThreadPoolExecutor(workers) as pool:
        pending: deque = deque()
        for b in batches:
            pending.append(pool.submit(fn, b))
            if len(pending) >= workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
