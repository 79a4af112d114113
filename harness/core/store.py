"""Files on disk, one definition each: atomic writes, the cache root and its locks, settings and weights
hashes, and the once-per-base cache.

A core module (it reads only the sampling engine, :mod:`harness.core.engine`), so training, analysis and report code all share it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


# --- atomic writes ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temp path beside ``path`` (same suffix, so writers that sniff it work); rename it onto ``path``
    when the block succeeds. Readers never see half a file; a failed write leaves the old file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path | str, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_json(path: Path | str, data: Any, indent: int | None = 1) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=indent, default=str))


def atomic_savefig(fig: Any, path: Path | str, dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG atomically (the figure is not closed)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return Path(path)


def read_json(path: Path | str) -> Any | None:
    """The JSON in ``path``, or None when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


# --- cache -----------------------------------------------------------------------------------------------


def cache_root() -> Path:
    """Root of the on-disk cache (``HARNESS_CACHE``, default ``~/.cache/harness``)."""
    root = Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "harness")).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def settings_hash(settings: Any, n: int = 12) -> str:
    """Stable short hash of JSON-able settings (OmegaConf containers are resolved first)."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(settings, DictConfig | ListConfig):
            settings = OmegaConf.to_container(settings, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:n]


@contextlib.contextmanager
def cache_lock(name: str) -> Iterator[None]:
    """Inter-process lock so parallel jobs (submitit, SLURM) build a cache entry once."""
    lock_dir = cache_root() / "locks"
    lock_dir.mkdir(exist_ok=True)
    with open(lock_dir / f"{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def weights_files(path: Path | str) -> list[Path]:
    """The safetensors files of a checkpoint dir (or the file itself)."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(path.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors in {path}")
    return files


def weights_hash(path: Path | str) -> str:
    """sha256 of a checkpoint's safetensors bytes, memoized by (path, size, mtime) on disk: sound (a changed
    file is re-hashed, so a checkpoint retrained at the same path gets a new key) and cheap (a 500 MB
    checkpoint is hashed once, not on every use)."""
    files = weights_files(path)
    index_path = cache_root() / "hashes.json"
    with cache_lock("weights-hashes"):
        index = read_json(index_path) or {}
        parts, changed = [], False
        for f in files:
            st = f.stat()
            key, stamp = str(f.resolve()), [st.st_size, st.st_mtime_ns]
            entry = index.get(key)
            if not entry or entry.get("stamp") != stamp:
                with open(f, "rb") as fh:
                    entry = {"stamp": stamp, "sha256": hashlib.file_digest(fh, "sha256").hexdigest()}
                index[key], changed = entry, True
            parts.append(f"{f.name}:{entry['sha256']}")
        if changed:
            atomic_write_json(index_path, index)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def base_key(base: Path | str, settings: Any = None) -> str:
    """Cache key of a per-base quantity: the hash of the base's weights plus the settings it depends on.
    A hub id (no local files) is keyed by its name."""
    try:
        ident = weights_hash(base)
    except (FileNotFoundError, NotADirectoryError):
        ident = str(base)
    return settings_hash({"weights": ident, "settings": settings}, 16)


def once_per_base(kind: str, base: Path | str, settings: Any, compute: Callable[[], T],
                  save: Callable[[T, Path], None], load: Callable[[Path], T], suffix: str = ".json") -> T:
    """``compute()`` once per (base weights, settings), stored under ``cache_root()/<kind>/``; later calls, in
    this process or another, ``load`` it. The key hashes the weights, not the path, and the sampling engine when
    it is not the default (vLLM samples other completions than HF ``generate`` for the same seed)."""
    from harness.core.engine import current_engine

    if current_engine() != "hf":
        settings = {"settings": settings, "engine": current_engine()}
    path = cache_root() / kind / f"{base_key(base, settings)}{suffix}"
    if path.exists():
        return load(path)
    with cache_lock(f"{kind}-{path.stem}"):
        if path.exists():
            return load(path)
        value = compute()
        with atomic_path(path) as tmp:
            save(value, tmp)
        return value
