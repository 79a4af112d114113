"""Pair studies on checkpoint pairs built here with a planted geometry (tiny Llama shapes, `harness/sources/tiny.py`).

The base's attention/MLP projections are replaced by matrices with a clear spectral gap after k = 16
(:func:`harness.geometry.synthetic.designed_matrix`); the tuned checkpoints carry updates whose place relative
to W0's principal structure is known by construction (:class:`harness.geometry.synthetic.Planted`):

- "RLVR" pairs: ΔW = U_⊥ Z V_⊥ᵀ off W0's top-16 singular subspaces *and* off its principal entries, small
  (‖ΔW‖/‖W0‖ = 1e-3: most changes below bf16's resolution, above 1e-5), the three sharing half their direction;
- "SFT" pairs: ΔW = U_k D V_kᵀ + U_⊥ C V_kᵀ, rescaling and tilting the top-16 subspaces (rank ≤ 16), larger.

From that, and nothing else, follow the verdicts asserted below.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file

from harness.claims import CONTRADICTED, SUPPORTED
from harness.geometry.synthetic import Planted, designed_matrix, write_checkpoint

ROOT = Path(__file__).resolve().parent.parent
K = 16


def projections(tensors: dict[str, torch.Tensor]) -> list[str]:
    return [n for n in tensors if n.endswith("_proj.weight")]


def build_base(tiny_base: Path, out: Path, seed: int = 0, dtype: torch.dtype = torch.float32
               ) -> tuple[dict[str, torch.Tensor], dict[str, Planted]]:
    """The tiny Llama checkpoint with designed projections (stored in ``dtype``)."""
    tensors = load_file(str(Path(tiny_base) / "model.safetensors"))
    g = torch.Generator().manual_seed(seed)
    planted = {}
    for name in projections(tensors):
        w0 = designed_matrix(*tensors[name].shape, K, g).to(dtype).float()
        planted[name] = Planted(w0, K)
        tensors[name] = w0.to(dtype)
    write_checkpoint(out, tensors)
    return tensors, planted


def write_tuned(out: Path, base: dict[str, torch.Tensor], update: dict[str, torch.Tensor],
                dtype: torch.dtype = torch.float32) -> Path:
    return write_checkpoint(out, {**base, **{n: (base[n].float() + d).to(dtype) for n, d in update.items()}})


@pytest.fixture(scope="module")
def study(tmp_path_factory, tiny_base) -> Path:
    """3 RLVR-labelled and 3 SFT-labelled pairs of one fp32 base, and the study file listing them."""
    root = tmp_path_factory.mktemp("planted")
    base, planted = build_base(tiny_base, root / "base")
    g = torch.Generator().manual_seed(1)
    shared = {n: torch.randn(p.w0.shape[0] - K, p.w0.shape[1] - K, generator=g) for n, p in planted.items()}
    pairs = []
    for i in range(3):
        upd = {n: p.off_principal(shared[n] + torch.randn(shared[n].shape, generator=g), 1e-3 * float(p.w0.norm()))
               for n, p in planted.items()}
        write_tuned(root / f"rlvr{i}", base, upd)
        pairs.append({"name": f"grpo-{i}", "base": "base", "tuned": f"rlvr{i}", "objective": "rlvr",
                      "algorithm": "GRPO", "dataset": "planted", "dtype": "float32", "group": "tiny"})
    for i in range(3):
        write_tuned(root / f"sft{i}", base, {n: p.principal(g, 1e-2, 0.5) for n, p in planted.items()})
        pairs.append({"name": f"sft-{i}", "base": "base", "tuned": f"sft{i}", "objective": "sft",
                      "dataset": "planted", "group": "tiny"})
    (root / "study.yaml").write_text(yaml.safe_dump({"name": "planted", "pairs": pairs}))
    return root


def claims(out: Path) -> dict[str, str]:
    df = pd.read_csv(out / "report" / "claims.csv")
    return dict(zip(df["id"], df["verdict"]))


def test_readme_command_writes_claims_that_follow_the_planted_truth(study: Path, tmp_path) -> None:
    """Acceptance: `python -m harness.analyze pairs=<file>` over 3 RLVR + 3 SFT pairs of one base."""
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "harness.analyze", f"pairs={study / 'study.yaml'}", f"out={out}"],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    report = (out / "report.md").read_text()
    assert "# Pair study report" in report and "## Claims" in report and "Group `tiny` (6 pairs)" in report
    got = claims(out)
    # P1: SFT rescales the top singular values, RLVR's update has no first-order drift of them
    # P2: RLVR's update has no coupling to the top-k subspaces (no first-order rotation), SFT's tilts them
    # P3: RLVR's update is orthogonal to the top-k block and avoids every principal entry; SFT's lies in it
    # P4: the three RLVR updates share half their direction, and all their changes avoid the principal mask
    # P5.III: RLVR's changes are mostly below bf16's spacing but above 1e-5 (fp32-stored pairs)
    # S1: the planted RLVR update changes every non-principal entry (not sparse) and has rank up to 48 of 64
    #     (numerical-rank fraction 0.75 < 0.9): contradicted; E2: RLVR's rank exceeds SFT's (≤ 16): contradicted
    assert {c: got[c] for c in ("P1", "P2", "P3", "P4", "P5.III", "S1", "E2")} == {
        "P1": SUPPORTED, "P2": SUPPORTED, "P3": SUPPORTED, "P4": SUPPORTED, "P5.III": SUPPORTED,
        "S1": CONTRADICTED, "E2": CONTRADICTED}
    assert set(got) == {"P1", "P2", "P3", "P4", "P5.III", "S1", "E2"}  # the others need training runs
    df = pd.read_csv(out / "report" / "claims.csv")
    assert (df["n"] >= 2).all() and df["estimate [95% CI]"].str.contains("pairs").all()
    for name in ("grpo-0", "sft-2"):
        rec = json.loads((out / name / "run.json").read_text())
        assert rec["status"] == "done" and rec["pair"]["tuned_dtype"] == "float32"
    assert "across pairs of one base" in report and (out / "plots" / "geometry_layers.png").exists()
    assert "stored (base → tuned)" in report and "float32 → float32" in report
