"""Where the analyzer reads weights from: a base checkpoint (W0), and a ΔW source (a run's
``delta.safetensors``, or the difference of two checkpoints). Tensors are read lazily, one name at a time,
so memory stays at one batch of matrices whatever the model size."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import torch
from safetensors import safe_open

from harness.store import weights_hash
from harness.weights import PROJECTIONS, analyzed_weights

# Module types in the order tables list them: q_proj -> "q", ..., down_proj -> "down".
MODULES = tuple(p.removesuffix("_proj") for p in PROJECTIONS)
LAYER = re.compile(r"\.layers?\.(\d+)\.")


def matrix_kind(name: str) -> tuple[int, str]:
    """(layer index, module type) of a state-dict name; layer -1 for matrices outside the blocks."""
    m = LAYER.search(name)
    leaf = name.rsplit(".", 2)[-2] if name.endswith(".weight") else name.rsplit(".", 1)[-1]
    return (int(m.group(1)) if m else -1), leaf.removesuffix("_proj")


def sort_names(names: Iterable[str]) -> list[str]:
    """Layer by layer, modules in the order q, k, v, o, gate, up, down (others last)."""
    order = {m: i for i, m in enumerate(MODULES)}
    return sorted(names, key=lambda n: (matrix_kind(n)[0], order.get(matrix_kind(n)[1], len(order)), n))


class _Tensors:
    """Names and shapes of the tensors of a safetensors source, read from headers only."""

    _shapes: dict[str, tuple[int, ...]]

    @property
    def names(self) -> list[str]:
        return list(self._shapes)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._shapes[name]


class Checkpoint(_Tensors):
    """A Hugging Face checkpoint dir (one or more ``*.safetensors`` files), read lazily by tensor name."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.files = sorted(self.path.glob("*.safetensors"))
        if not self.files:
            raise FileNotFoundError(f"no *.safetensors in {self.path}")
        self._where: dict[str, Path] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        for f in self.files:
            with safe_open(str(f), framework="pt") as fh:
                for k in fh.keys():
                    self._where[k] = f
                    self._shapes[k] = tuple(fh.get_slice(k).get_shape())
        self._hash: str | None = None

    def get(self, name: str) -> torch.Tensor:
        with safe_open(str(self._where[name]), framework="pt") as fh:
            return fh.get_tensor(name)

    def analyzed(self, include_embeddings: bool = False) -> list[str]:
        """The 2-D projection weights the harness analyzes (same rule as the adapters use)."""
        meta = {k: torch.empty(s, device="meta") for k, s in self._shapes.items()}
        return analyzed_weights(meta, include_embeddings)

    def weights_hash(self) -> str:
        """sha256 of the checkpoint's safetensors bytes, memoized by (path, size, mtime) on disk: sound (a
        changed file is re-hashed) and cheap (a 500 MB checkpoint is hashed once, not on every analysis)."""
        if self._hash is None:
            self._hash = weights_hash(self.path)
        return self._hash


class RunDelta(_Tensors):
    """ΔW of a run, from its ``delta.safetensors``; opening it checks the header (a corrupt file raises)."""

    def __init__(self, path: Path):
        self.path = path
        with safe_open(str(path), framework="pt") as fh:
            self.metadata = fh.metadata() or {}
            self._shapes = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}

    def get(self, name: str) -> torch.Tensor:
        with safe_open(str(self.path), framework="pt") as fh:
            return fh.get_tensor(name).float()

    def stamp(self) -> list[int]:
        st = self.path.stat()
        return [st.st_size, st.st_mtime_ns]


class PairDelta:
    """ΔW = W_tuned − W_base of two checkpoints, computed in fp32 (exact for bf16 checkpoints)."""

    def __init__(self, base: Checkpoint, tuned: Checkpoint):
        self.base, self.tuned = base, tuned
        self._shapes = {k: tuned.shape(k) for k in tuned.names if k in base._shapes}

    @property
    def names(self) -> list[str]:
        return list(self._shapes)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._shapes[name]

    def get(self, name: str) -> torch.Tensor:
        return self.tuned.get(name).float() - self.base.get(name).float()

    def stamp(self) -> list[int]:
        return [f.stat().st_mtime_ns for f in self.tuned.files]
