"""Which weights the harness trains, stores and analyzes: one rule for adapters, runs and the analyzer.

A leaf module, so the analyzer knows the rule without importing training code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# The attention and MLP projections of a decoder block (Llama-style names, also Qwen/Mistral/SmolLM).
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def analyzed_weights(state: Mapping[str, Any], include_embeddings: bool = False) -> list[str]:
    """Names of the 2-D weights whose update is stored and analyzed (values need ``.ndim``)."""
    names = []
    for k, v in state.items():
        if v.ndim != 2 or not k.endswith(".weight"):
            continue
        leaf = k.rsplit(".", 2)[-2]
        if leaf in PROJECTIONS or (include_embeddings and ("embed" in k or "lm_head" in k)):
            names.append(k)
    return names


# A trajectory's snapshots (harness/train/trajectory.py writes them; the analyzer and the per-snapshot eNTK read
# them): ΔW_t of the analyzed weights at optimizer step t, one file per snapshot.
SNAPSHOT_FILE = re.compile(r"^step_(\d+)\.safetensors$")


def snapshot_name(step: int) -> str:
    """The file name of the snapshot at optimizer step ``step``."""
    return f"step_{step}.safetensors"


def snapshot_files(traj_dir: Path) -> dict[int, Path]:
    """Step -> snapshot file of a trajectory dir, in step order."""
    found = {int(m.group(1)): p for p in Path(traj_dir).iterdir() if (m := SNAPSHOT_FILE.match(p.name))}
    return dict(sorted(found.items()))
