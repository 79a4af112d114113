"""Which engine samples inside a block: ``hf`` (in-process ``generate``, the default) or ``vllm``. A context
variable in core because the once-per-base caches key on it (:func:`harness.core.store.once_per_base`: vLLM
samples other completions than HF ``generate`` for the same seed) and the measurements read it."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

_ENGINE: contextvars.ContextVar[str] = contextvars.ContextVar("sampling_engine", default="hf")


@contextlib.contextmanager
def engine(name: str) -> Iterator[None]:
    """Sample (and evaluate) through ``hf`` (in-process ``generate``) or ``vllm`` inside the block."""
    token = _ENGINE.set(name)
    try:
        yield
    finally:
        _ENGINE.reset(token)


def current_engine() -> str:
    return _ENGINE.get()
