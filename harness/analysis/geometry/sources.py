"""Where the analyzer reads weights from: a base checkpoint (W0), and a ΔW source (a run's
``delta.safetensors``, or the difference of two checkpoints), and how a reference (a dir, a model name of
``conf/model`` or a hub id at a revision) becomes a checkpoint dir. Tensors are read lazily, one name at a
time (``safe_open``; sharded checkpoints through their index, any stored dtype), so memory stays at one
batch of matrices whatever the model size."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

import torch
from safetensors import safe_open

from harness.core.store import weights_hash
from harness.core.weights import PROJECTIONS, analyzed_weights

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


# safetensors header dtype -> torch name (what a checkpoint stores its weights in)
DTYPE_NAMES = {"F32": "float32", "BF16": "bfloat16", "F16": "float16", "F64": "float64", "F8_E4M3": "float8_e4m3fn",
               "F8_E5M2": "float8_e5m2"}
INDEX = "model.safetensors.index.json"


def checkpoint_files(path: Path) -> list[Path]:
    """The safetensors files of a checkpoint dir: those its index names when it has one (a dir may hold other
    ``*.safetensors``, e.g. a consolidated copy), else every ``*.safetensors``."""
    index = path / INDEX
    if index.is_file():
        try:
            names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            return [path / n for n in names]
        except (OSError, ValueError, KeyError, TypeError):
            pass  # unreadable index: fall back to every file
    return sorted(path.glob("*.safetensors"))


class Checkpoint(_Tensors):
    """A Hugging Face checkpoint dir (one or more ``*.safetensors`` files), read lazily by tensor name."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.files = checkpoint_files(self.path)
        if not self.files:
            raise FileNotFoundError(f"no *.safetensors in {self.path}")
        self._where: dict[str, Path] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._dtypes: dict[str, str] = {}
        for f in self.files:
            with safe_open(str(f), framework="pt") as fh:
                for k in fh.keys():
                    sl = fh.get_slice(k)
                    self._where[k] = f
                    self._shapes[k] = tuple(sl.get_shape())
                    self._dtypes[k] = DTYPE_NAMES.get(sl.get_dtype(), sl.get_dtype().lower())
        self._hash: str | None = None

    def storage_dtype(self, names: Iterable[str] | None = None) -> str:
        """The dtype the checkpoint stores ``names`` (default: every tensor) in: one name, or
        ``mixed(a,b)`` when they differ."""
        found = sorted({self._dtypes[n] for n in (self._dtypes if names is None else names)})
        return found[0] if len(found) == 1 else f"mixed({','.join(found)})"

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
        d = self.tuned.get(name).float()
        return d.sub_(self.base.get(name).float())  # in place: one float32 matrix held, not three

    def stamp(self) -> list[int]:
        return [f.stat().st_mtime_ns for f in self.tuned.files]


# --- references -> checkpoint dirs -----------------------------------------------------------------------

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
HUB_FILES = ["*.json", "*.safetensors"]  # configs, the index and the weights: nothing else is read


class ResolveError(ValueError):
    """A checkpoint reference that cannot be resolved; the message is the one-line error."""


def model_names() -> list[str]:
    from harness import CONF_DIR

    return sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml") if p.stem != "hf")


def hub_offline() -> bool:
    """Whether hub downloads are off (``HF_HUB_OFFLINE``, on by default in the harness)."""
    import os

    return os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() in ("1", "true", "yes", "on")


def resolve_checkpoint(key: str, ref: str, revision: str | None = None, relative_to: Path | None = None,
                       download: bool = True) -> Path:
    """A checkpoint dir from a dir (relative ones under ``relative_to`` when given), a model name of
    conf/model (its source, before warm-up) or a hub id at ``revision`` (downloaded unless offline or
    ``download`` is false, in which case it must be in the local hub cache). :class:`ResolveError` with the
    one-line reason otherwise; offline, it names what to set."""
    path = Path(ref).expanduser()
    if relative_to is not None and not path.is_absolute() and (relative_to / path).is_dir():
        path = relative_to / path
    if path.is_dir():
        if revision:
            raise ResolveError(f"error: bad {key}_revision {revision!r} for the local dir {ref!r}; valid: a "
                               "revision only with a hub id (org/name)")
        if not checkpoint_files(path):
            raise ResolveError(f"error: {key} {ref!r} holds no *.safetensors checkpoint")
        return path
    if ref in model_names() and not revision:
        from omegaconf import OmegaConf

        from harness import CONF_DIR
        from harness.data.models import source_dir

        return Path(source_dir(OmegaConf.load(CONF_DIR / "model" / f"{ref}.yaml")))
    if HUB_ID.match(ref) and not path.exists():
        from huggingface_hub import snapshot_download

        local = hub_offline() or not download
        try:
            return Path(snapshot_download(ref, revision=revision, allow_patterns=HUB_FILES, local_files_only=local))
        except Exception as exc:
            at = f"@{revision}" if revision else ""
            if local:
                raise ResolveError(f"error: {key} {ref + at!r} is not in the local hub cache; offline by default: "
                                   "set HF_HUB_OFFLINE=0 to download") from exc
            raise ResolveError(f"error: {key} {ref + at!r}: hub download failed ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
    raise ResolveError(f"error: unknown {key} {ref!r}; valid: a checkpoint dir, a hub id (org/name) or a "
                       f"model name: {', '.join(model_names())}")
