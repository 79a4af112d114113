"""Cross-run consistency: do runs from the same base move the same weights the same way?

For every pair of runs, per module type and whole model (matrices concatenated):

- ``cosine`` of the flattened ΔW, beside ``cosine_base`` = sqrt(2/(π·d)), the expected |cosine| of two
  independent random directions in d dimensions;
- ``norm_a``, ``norm_b``: ‖ΔW‖_F of each run over the scope, so that the Gram matrix of the runs' updates
  (cosine · norm_a · norm_b) can be rebuilt, e.g. for a run's cosine to the mean update of other runs;
- ``jaccard`` |A ∩ B| / |A ∪ B| of the bf16 update masks, beside ``jaccard_base``, its expectation for
  independent random masks with the same per-matrix densities (Σ p_a p_b N / Σ (p_a + p_b − p_a p_b) N).

One pass over the matrices: per matrix, the R runs' ΔW (and masks) are stacked and every pair comes from
one R×R product, so memory holds one matrix per run, never whole deltas.
"""

from __future__ import annotations

import math
from typing import Protocol

import pandas as pd
import torch

from harness.analysis.geometry.metrics import bf16_changed
from harness.analysis.geometry.sources import Checkpoint, matrix_kind

CHUNK = 1 << 22  # entries per float64 slice of the pairwise products (32 MiB per run)
CROSS_COLUMNS = ["run_a", "run_b", "scope", "cosine", "cosine_base", "norm_a", "norm_b", "jaccard", "jaccard_base",
                 "params"]


class DeltaSource(Protocol):
    names: list[str]

    def get(self, name: str) -> torch.Tensor: ...


class _Acc:
    def __init__(self, r: int):
        z = torch.zeros(r, r, dtype=torch.float64)
        self.dot, self.inter, self.e_inter, self.e_union = z.clone(), z.clone(), z.clone(), z.clone()
        self.count = torch.zeros(r, dtype=torch.float64)
        self.numel = 0

    def add(self, d: torch.Tensor, mask: torch.Tensor) -> None:
        n = d.shape[1]
        for i in range(0, n, CHUNK):  # float64 products over slices: memory stays flat
            dd = d[:, i:i + CHUNK].double()
            self.dot += dd @ dd.T
            mf = mask[:, i:i + CHUNK].double()
            self.inter += mf @ mf.T  # pairwise intersection counts
        cnt = mask.sum(1, dtype=torch.float64)
        outer = cnt[:, None] * cnt[None, :] / n
        self.e_inter += outer
        self.e_union += cnt[:, None] + cnt[None, :] - outer
        self.count += cnt
        self.numel += n


def cross_run(labels: list[str], deltas: list[DeltaSource], base: Checkpoint, names: list[str],
              device: str = "cpu") -> pd.DataFrame:
    """The pairwise table for runs that share ``base`` (``names``: matrices every run has)."""
    r = len(labels)
    accs: dict[str, _Acc] = {}
    for name in names:
        w0 = base.get(name).to(device, torch.float32)
        ds = torch.stack([dl.get(name).to(device, torch.float32) for dl in deltas])
        masks = bf16_changed(w0.expand_as(ds), ds)[0].flatten(1).cpu()
        flat = ds.flatten(1).cpu()
        for scope in ("all", matrix_kind(name)[1]):
            accs.setdefault(scope, _Acc(r)).add(flat, masks)
    rows = []
    for scope, a in accs.items():
        for i in range(r):
            for j in range(i + 1, r):
                norm = math.sqrt(a.dot[i, i] * a.dot[j, j])
                union = a.count[i] + a.count[j] - a.inter[i, j]
                rows.append({
                    "run_a": labels[i], "run_b": labels[j], "scope": scope,
                    "cosine": float(a.dot[i, j] / norm) if norm > 0 else math.nan,
                    "cosine_base": math.sqrt(2 / (math.pi * a.numel)),
                    "norm_a": math.sqrt(float(a.dot[i, i])), "norm_b": math.sqrt(float(a.dot[j, j])),
                    "jaccard": float(a.inter[i, j] / union) if union > 0 else math.nan,
                    "jaccard_base": float(a.e_inter[i, j] / a.e_union[i, j]) if a.e_union[i, j] > 0 else math.nan,
                    "params": a.numel,
                })
    return pd.DataFrame(rows, columns=CROSS_COLUMNS)


def reference_cosines(cross: pd.DataFrame, group: dict[str, str], scope: str = "all") -> dict[str, float]:
    """Each run's ΔW cosine to the mean ΔW of the runs in the *other* groups (The Path Not Taken's "reference
    update direction": group = dataset or RL algorithm), from a cross-run table with norms.

    With G the Gram matrix of the updates (G_ij = cosine_ij·norm_i·norm_j, G_ii = norm_i²) and J the other
    groups' runs: cos(x_i, mean_J) = Σ_{j∈J} G_ij / (norm_i · sqrt(Σ_{j,k∈J} G_jk)). Runs missing from the
    table, or whose group has no other group beside it, are left out.
    """
    rows = cross[cross["scope"] == scope]
    gram: dict[tuple[str, str], float] = {}
    for r in rows.itertuples():
        a, b = str(r.run_a), str(r.run_b)
        gram[(a, b)] = gram[(b, a)] = float(r.cosine) * float(r.norm_a) * float(r.norm_b)
        gram[(a, a)], gram[(b, b)] = float(r.norm_a) ** 2, float(r.norm_b) ** 2
    runs = [r for r in group if (r, r) in gram]
    out = {}
    for i in runs:
        others = [j for j in runs if group[j] != group[i]]
        if not others or any((i, j) not in gram for j in others):
            continue
        mean_sq = sum(gram.get((j, k), math.nan) for j in others for k in others)
        denom = math.sqrt(gram[(i, i)] * mean_sq) if mean_sq > 0 else 0.0
        out[i] = sum(gram[(i, j)] for j in others) / denom if denom > 0 else math.nan
    return out
