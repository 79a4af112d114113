"""Per-matrix update geometry, exactly as ``DESIGN.md`` ("Metric definitions") defines it.

For W0 (m×n), ΔW and W1 = W0 + ΔW, batched over matrices of one shape:

- ``drift``: ‖σ(W1) − σ(W0)‖₂ / ‖σ(W0)‖₂.
- ``angle_u_<k>``/``angle_v_<k>``: largest principal angle (degrees) between the top-k left (right) singular
  subspaces of W0 and W1; ``angle_<k>`` the larger of the two.
- ``sparsity_bf16``: fraction of entries with |Δ| ≤ 1e-3·max(|w0|, |w1|). Consecutive bf16 numbers differ by
  at least 2⁻⁸·max ≈ 3.9e-3·max, so for bf16 weights this is exactly "identical in bf16".
  ``sparsity_abs``: fraction with |Δ| ≤ 1e-5.
- ``eff_rank``: exp(H(p)), p_i = σ_i(ΔW)/Σσ(ΔW); ``stable_rank``: ‖ΔW‖_F²/‖ΔW‖₂²; ``num_rank_frac``:
  #{σ_i > σ_max·max(m, n)·eps} / min(m, n), the default tolerance of ``matrix_rank`` with eps of float32
  (the precision ΔW is computed in, whatever dtype it is stored in). A zero ΔW has all three 0.
- ``energy_<k>``: ‖U_kᵀ ΔW V_k‖_F² / ‖ΔW‖_F² (U, V of W0) beside ``energy_base_<k>`` = k²/(mn), the
  expected share of a random ΔW.
- ``mask_overlap_<k>``: |M_upd ∩ M_princ| / |M_upd| (M_upd: entries changed by the bf16 criterion, M_princ:
  the top-α fraction of |rank-k reconstruction of W0|) beside ``mask_base``, the share of M_princ (≈ α),
  which is the expected overlap of a random mask. Undefined (NaN) when nothing changed.

k is a setting: an int is a fixed k (capped at min(m, n)); a float in (0, 1) a fraction of min(m, n),
rounded, at least 1. Defaults: 16 and 1 % (columns ``..._k16`` and ``..._k1pct``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from harness.geometry.spectra import (
    Decomp,
    gram_decomp,
    principal_scores,
    principal_threshold,
    randomized_topk,
)

TOPK_METHODS = ("exact", "randomized")
BF16_RTOL = 1e-3  # DESIGN: unchanged iff |w1 − w0| ≤ 1e-3·max(|w0|, |w1|)
ABS_TOL = 1e-5  # DESIGN: absolute criterion |Δ| ≤ 1e-5
RANK_EPS = torch.finfo(torch.float32).eps


@dataclass(frozen=True)
class Settings:
    """Analyzer settings (``python -m harness.analyze ... k=16,0.01 alpha=0.2 topk=exact``)."""

    ks: tuple[int | float, ...] = (16, 0.01)
    alpha: float = 0.2  # principal mask share; 0.2 = the sparse adapter's default (conf/adapter/sparse.yaml)
    topk: str = "exact"  # exact | randomized (top-k vectors of W1; see harness.geometry.spectra)
    tol_deg: float = 1e-4  # randomized: accepted bound on the angle error, else exact fallback
    iters: int = 6  # randomized: power iterations at most
    embeddings: bool = False  # also analyze embed_tokens / lm_head when the delta holds them
    device: str = "cpu"
    matrix: str | None = None  # matrix whose spectrum is plotted (default: the one that drifted most)

    def k_values(self, m: int, n: int) -> list[int]:
        r = min(m, n)
        return [min(int(k), r) if k >= 1 else max(1, round(k * r)) for k in self.ks]

    def labels(self) -> list[str]:
        return [f"k{int(k)}" if k >= 1 else f"k{k * 100:g}pct" for k in self.ks]

    def fingerprint(self) -> dict:
        """What changes metric values (a stored analysis with another fingerprint is recomputed)."""
        d = asdict(self)
        for k in ("device", "matrix") + (() if self.topk == "randomized" else ("tol_deg", "iters")):
            d.pop(k)
        d["ks"] = list(self.ks)
        return d


def k_columns(label: str) -> list[str]:
    return [f"k_{label}", f"angle_{label}", f"angle_u_{label}", f"angle_v_{label}", f"energy_{label}",
            f"energy_base_{label}", f"mask_overlap_{label}"]


def columns(settings: Settings) -> list[str]:
    """Column order of ``geometry.csv``."""
    per_k = [c for lab in settings.labels() for c in k_columns(lab)]
    return (["name", "layer", "module", "m", "n", "params", "drift"] + per_k +
            ["mask_base", "sparsity_bf16", "sparsity_abs", "eff_rank", "stable_rank", "num_rank_frac",
             "delta_fro", "w0_fro", "rel_update", "angle_bound_deg"])


def spectral_drift(s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(s1 - s0, dim=-1) / torch.linalg.vector_norm(s0, dim=-1)


def largest_angle_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Largest principal angle between span(a) and span(b) (orthonormal columns, batched), in degrees.

    cos θ_max = σ_min(aᵀb) and sin θ_max = σ_max(b − a aᵀb); atan2 of the two is accurate for small and
    large angles alike (arccos alone loses small angles, arcsin large ones), as in scipy's subspace_angles.
    """
    m = a.mT @ b
    cos = torch.linalg.svdvals(m)[..., -1].clamp(0.0, 1.0)
    sin = torch.linalg.matrix_norm(b - a @ m, ord=2).clamp(0.0, 1.0)
    return torch.rad2deg(torch.atan2(sin, cos))


def bf16_changed(w0: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The update mask M_upd, |Δ| > 1e-3·max(|w0|, |w0 + Δ|), and |Δ| (float32, in place where possible:
    these passes over m·n entries cost about as much as a Gram product)."""
    tol = w0 + d
    torch.maximum(w0.abs(), tol.abs_(), out=tol).mul_(BF16_RTOL)
    ad = d.abs()
    return ad > tol, ad


def count(mask: torch.Tensor) -> torch.Tensor:
    """True entries per matrix, as float64 (summing bytes into int32 measured 3x faster than count_nonzero;
    int32 holds any matrix below 2^31 entries)."""
    return mask.view(torch.uint8).flatten(-2).sum(-1, dtype=torch.int32).to(torch.float64)


def rank_metrics(sd: torch.Tensor, m: int, n: int) -> dict[str, torch.Tensor]:
    """Effective (entropy) rank, stable rank, numerical-rank fraction from σ(ΔW) (descending)."""
    total = sd.sum(-1)
    top = sd[..., 0]
    nonzero = top > 0
    p = sd / total.clamp_min(1e-300)[..., None]
    eff = torch.exp(torch.special.entr(p).sum(-1))  # entr(x) = −x ln x, with entr(0) = 0
    stable = sd.pow(2).sum(-1) / top.pow(2).clamp_min(1e-300)
    num = (sd > (top * max(m, n) * RANK_EPS)[..., None]).sum(-1) / min(m, n)
    zero = torch.zeros_like(total)
    return {"eff_rank": eff.where(nonzero, zero), "stable_rank": stable.where(nonzero, zero),
            "num_rank_frac": num.to(total.dtype).where(nonzero, zero)}


def update_metrics(w0: torch.Tensor, d: torch.Tensor, dd: torch.Tensor, base: Decomp, tuned: Decomp,
                   sd: torch.Tensor, ks: list[tuple[str, int]], alpha: float,
                   thresholds: list[torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """All per-matrix metrics of a batch, given the decompositions.

    w0, d: (B, m, n) float32 (W0, ΔW); dd: ΔW in float64; base/tuned: σ and top-max(k) vectors of W0/W1;
    sd: σ(ΔW); ks: (label, k); thresholds: per k, the principal-mask threshold of each matrix (computed from
    ``base`` when not given).
    """
    bsz, m, n = w0.shape
    mn = m * n
    out: dict[str, torch.Tensor] = {"drift": spectral_drift(base.S, tuned.S)}
    fro2 = sd.pow(2).sum(-1)  # = ‖ΔW‖_F²
    changed, ad = bf16_changed(w0, d)
    n_changed = count(changed)
    out["sparsity_bf16"] = 1 - n_changed / mn
    out["sparsity_abs"] = count(ad <= ABS_TOL) / mn
    del ad
    for i, (label, k) in enumerate(ks):
        ang_u = largest_angle_deg(base.U[..., :k], tuned.U[..., :k])
        ang_v = largest_angle_deg(base.V[..., :k], tuned.V[..., :k])
        proj = base.U[..., :k].mT @ dd @ base.V[..., :k]
        scores = principal_scores(base, k)
        thr = thresholds[i] if thresholds is not None else principal_threshold(scores, alpha)
        princ = scores >= thr[:, None, None]
        if i == 0:  # |M_princ|/mn: α up to ties, the same for every k
            out["mask_base"] = count(princ) / mn
        inter = count(princ.logical_and_(changed))
        out.update({
            f"k_{label}": torch.full((bsz,), float(k), dtype=torch.float64),
            f"angle_{label}": torch.maximum(ang_u, ang_v), f"angle_u_{label}": ang_u, f"angle_v_{label}": ang_v,
            f"energy_{label}": proj.pow(2).sum((-2, -1)) / fro2,  # 0/0 = NaN for a zero update
            f"energy_base_{label}": torch.full((bsz,), k * k / mn, dtype=torch.float64),
            f"mask_overlap_{label}": inter / n_changed,  # NaN when nothing changed
        })
    out.update(rank_metrics(sd, m, n))
    out["delta_fro"] = fro2.sqrt()
    out["w0_fro"] = torch.linalg.vector_norm(base.S, dim=-1)
    out["rel_update"] = out["delta_fro"] / out["w0_fro"]
    return {k: v.detach().to("cpu", torch.float64) for k, v in out.items()}


def batch_metrics(w0: torch.Tensor, d: torch.Tensor, base: Decomp, thresholds: list[torch.Tensor] | None,
                  settings: Settings, seed: int = 0) -> dict[str, torch.Tensor]:
    """The analyzer's fast path for one batch: σ and top-k of W1 from a float64 Gram ``eigh`` (or randomized,
    warm-started at W0's vectors), σ(ΔW) from the Gram eigenvalues of ΔW; W0's part comes from the cache."""
    m, n = w0.shape[-2:]
    ks = list(zip(settings.labels(), settings.k_values(m, n)))
    big_k = max(k for _, k in ks)
    w1 = (w0 + d).double()  # W1 as the tuned model holds it (float32), decomposed in float64
    bound = torch.zeros(w0.shape[0], dtype=torch.float64, device=w0.device)
    if settings.topk == "randomized":
        s1 = gram_decomp(w1).S
        u1, v1, bound = randomized_topk(w1, s1, base.V, [k for _, k in ks], iters=settings.iters,
                                        tol_deg=settings.tol_deg, seed=seed)
        bad = bound > settings.tol_deg
        if bool(bad.any()):  # not converged to the tolerance: exact decomposition for those matrices
            exact = gram_decomp(w1[bad], big_k)
            u1, v1 = u1.clone(), v1.clone()
            u1[bad], v1[bad], bound[bad] = exact.U, exact.V, 0.0
        tuned = Decomp(s1, u1, v1)
    else:
        tuned = gram_decomp(w1, big_k)
    del w1
    dd = d.double()
    nonzero = dd.flatten(1).abs().amax(1) > 0
    sd = torch.zeros(tuned.S.shape, dtype=torch.float64, device=d.device)
    if bool(nonzero.any()):  # adapters may leave matrices untouched: skip their (all-zero) spectra
        sd[nonzero] = gram_decomp(dd[nonzero]).S
    out = update_metrics(w0, d, dd, base, tuned, sd, ks, settings.alpha, thresholds)
    out["angle_bound_deg"] = bound.cpu()
    return out
