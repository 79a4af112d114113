"""Synthetic artifacts for tests and the bench: a low-rank + sparse ΔW, checkpoints and run dirs written in
the run artifact contract (``run.json``, ``.hydra/config.yaml``, ``delta.safetensors``)."""

from __future__ import annotations

import json
import math
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
    """A ΔW held in memory (same interface as :class:`harness.analysis.geometry.sources.RunDelta`)."""

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
    """A finished run dir as ``harness.launch.run`` writes it (only what the analyzer reads)."""
    (job_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    (job_dir / ".hydra" / "config.yaml").write_text(
        f"seed: {seed}\nadapter:\n  name: {adapter}\nobjective:\n  name: {objective}\n")
    save_file({k: v.contiguous() for k, v in delta.items()}, str(job_dir / "delta.safetensors"),
              metadata={"base_dir": str(base_dir), "adapter": adapter, "objective": objective})
    (job_dir / "run.json").write_text(json.dumps({
        "status": status, "reason": None, "seed": seed, "adapter": adapter, "objective": objective,
        "base_dir": str(base_dir), "timings": {}}))
    return job_dir


# --- model-shaped checkpoint pairs (the pairs bench) --------------------------------------------------------

# Shapes from the public config.json of each model (no download): hidden size, MLP width, layers, attention
# and key/value heads, vocabulary; embeddings tied as in the released checkpoints.
MODEL_SHAPES: dict[str, dict] = {
    "qwen2.5-0.5b": {"model_type": "qwen2", "vocab_size": 151936, "hidden_size": 896, "intermediate_size": 4864,
                     "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
                     "tie_word_embeddings": True},
    "qwen2.5-1.5b": {"model_type": "qwen2", "vocab_size": 151936, "hidden_size": 1536, "intermediate_size": 8960,
                     "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2,
                     "tie_word_embeddings": True},
    # the same architecture at test size (the bench's own test)
    "qwen2-tiny": {"model_type": "qwen2", "vocab_size": 1000, "hidden_size": 64, "intermediate_size": 128,
                   "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                   "tie_word_embeddings": True},
}
INIT_STD = 0.02  # the Hugging Face initializer range of these configs


def model_tensor_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """State-dict names and shapes of the model a config describes, from a meta-device model (no memory)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(**config)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if config.get("tie_word_embeddings"):
        shapes.pop("lm_head.weight", None)  # stored once, as the embedding
    return shapes


def write_sharded(out: Path, tensors: dict[str, torch.Tensor], config: dict, shard_bytes: int) -> Path:
    """Write ``tensors`` as a sharded Hugging Face checkpoint (``model-0000i-of-0000N.safetensors`` + index)."""
    out.mkdir(parents=True, exist_ok=True)
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for k, v in tensors.items():
        nbytes = v.numel() * v.element_size()
        if shards[-1] and size + nbytes > shard_bytes:
            shards.append({})
            size = 0
        shards[-1][k] = v.contiguous()
        size += nbytes
    weight_map = {}
    for i, shard in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(out / fname), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, fname))
    (out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (out / "config.json").write_text(json.dumps(config))
    return out


def write_model_pair(config: dict, out: Path, dtype: torch.dtype = torch.bfloat16, seed: int = 0,
                     scale: float = 1e-2, shard_bytes: int = 1 << 29) -> tuple[Path, Path]:
    """A base checkpoint with the config's shapes (random weights, std 0.02) and a tuned one whose attention
    and MLP projections carry a planted :func:`synthetic_delta` (rank 8 + 1 % sparse, each part
    ``scale``·‖W0‖_F, large enough to survive rounding to bf16); both stored in ``dtype`` and sharded.
    Returns (base dir, tuned dir)."""
    from harness.core.weights import PROJECTIONS

    gen = torch.Generator().manual_seed(seed)
    shapes = model_tensor_shapes(config)
    base: dict[str, torch.Tensor] = {}
    tuned: dict[str, torch.Tensor] = {}
    for name, shape in shapes.items():
        w0 = torch.ones(shape) if name.endswith("norm.weight") else torch.randn(*shape, generator=gen) * INIT_STD
        base[name] = w0.to(dtype)
        if len(shape) == 2 and name.rsplit(".", 2)[-2] in PROJECTIONS:
            w0 = base[name].float()
            tuned[name] = (w0 + synthetic_delta(w0, gen, scale=scale)).to(dtype)
        else:
            tuned[name] = base[name]
    cfg = {**config, "torch_dtype": str(dtype).removeprefix("torch.")}
    return (write_sharded(out / "base", base, cfg, shard_bytes), write_sharded(out / "tuned", tuned, cfg, shard_bytes))


# --- planted geometry (tests): updates whose place relative to W0's principal structure is known --------------


def designed_matrix(m: int, n: int, k: int, gen: torch.Generator, entry_sd: float = 0.1, gap: float = 3.0
                    ) -> torch.Tensor:
    """W0 = U diag(σ) Vᵀ (random orthonormal U, V) with a clear spectral gap after the k-th singular value
    (σ_k/σ_{k+1} = ``gap``, slowly decaying on each side), scaled so its entries have sd ``entry_sd``: rotations
    of its top-k subspaces are then well defined (Wedin's bound far below 1). float64."""
    r = min(m, n)
    decay = 1 - torch.arange(r, dtype=torch.float64) / (4 * r)
    s = torch.where(torch.arange(r) < k, gap * decay, decay)
    u = torch.linalg.qr(torch.randn(m, r, generator=gen, dtype=torch.float64)).Q
    v = torch.linalg.qr(torch.randn(n, r, generator=gen, dtype=torch.float64)).Q
    w = (u * s) @ v.T
    return w * (entry_sd * math.sqrt(m * n) / torch.linalg.norm(w))


class Planted:
    """A stored W0 (float32, as a checkpoint holds it) with its full SVD and principal mask (the analyzer's
    own :mod:`harness.core.linalg` definition at ``k`` and ``alpha``), to plant updates of known geometry:

    - :meth:`off_principal`: ΔW = U_⊥ Z V_⊥ᵀ (no component in, or coupling to, W0's top-k singular
      subspaces: energy 0, no first-order rotation) that is also exactly 0 on the principal mask (no principal
      entry changes): the projection of Z onto {(U_⊥ Z V_⊥ᵀ)[M_princ] = 0}, factorised once per matrix;
    - :meth:`principal`: ΔW = U_k D V_kᵀ + U_⊥ C V_kᵀ, rescaling the top-k singular values (drift) and tilting
      the top-k left subspace out of itself (rotation), all of it in W0's principal row space (rank ≤ k).
    """

    def __init__(self, w0: torch.Tensor, k: int = 16, alpha: float = 0.2):
        from harness.core.linalg import principal_mask, principal_scores

        self.w0 = w0.float()
        self.k = k
        w = self.w0.double()
        u, s, vh = torch.linalg.svd(w, full_matrices=True)
        self.u, self.s, self.v = u, s, vh.T
        self.mask = principal_mask(principal_scores(self.w0, k), alpha)
        u_perp, v_perp = u[:, k:], self.v[:, k:]
        self._perp = (u_perp, v_perp)
        self._pu, self._pv = u_perp @ u_perp.T, v_perp @ v_perp.T  # projectors off the top-k subspaces
        self._rows, self._cols = self.mask.nonzero(as_tuple=True)
        # one constraint per principal entry (p, q): (U_⊥ Z V_⊥ᵀ)[p, q] = 0; the constraints' Gram matrix is
        # P_u[p, p']·P_v[q, q'] (no |M| × (m−k)(n−k) matrix is formed)
        gram = self._pu[self._rows][:, self._rows] * self._pv[self._cols][:, self._cols]
        self._chol = torch.linalg.cholesky(gram)

    def off_principal(self, z: torch.Tensor, norm: float) -> torch.Tensor:
        """ΔW off W0's principal subspaces and principal entries, from a direction ``z`` ((m−k)×(n−k)), with
        Frobenius norm ``norm``: U_⊥ Z V_⊥ᵀ minus its least-squares correction P_u Y P_v, where Y holds the
        solved multipliers on the principal entries."""
        u_perp, v_perp = self._perp
        x = u_perp @ z.double() @ v_perp.T
        y = torch.cholesky_solve(x[self._rows, self._cols][:, None], self._chol)[:, 0]
        scatter = torch.zeros_like(x)
        scatter[self._rows, self._cols] = y
        x = x - self._pu @ scatter @ self._pv
        x[self.mask] = 0.0  # ~1e-16 left by the solve: exactly unchanged, as the planted truth says
        return (x * (norm / torch.linalg.norm(x))).float()

    def principal(self, gen: torch.Generator, scale: float, tilt: float) -> torch.Tensor:
        """ΔW = U_k D V_kᵀ + U_⊥ C V_kᵀ: D scales the top-k singular values by 1 + ``scale``·N(1, 0.1²); C
        (Gaussian, Frobenius norm ``tilt``·‖D‖) tilts the top-k left subspace."""
        k, m = self.k, self.u.shape[0]
        d = torch.diag(self.s[:k] * scale * (1 + 0.1 * torch.randn(k, generator=gen, dtype=torch.float64)))
        c = torch.randn(m - k, k, generator=gen, dtype=torch.float64)
        c = c * (tilt * torch.linalg.norm(d) / torch.linalg.norm(c))
        vk = self.v[:, :k]
        return (self.u[:, :k] @ d @ vk.T + self.u[:, k:] @ c @ vk.T).float()
