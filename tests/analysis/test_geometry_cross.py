"""Cross-run consistency: cosine of ΔW and Jaccard of bf16 update masks, with their random baselines."""

from __future__ import annotations

import math

import pytest
import torch

from harness.analysis.geometry.cross import cross_run
from harness.analysis.geometry.sources import Checkpoint
from harness.analysis.geometry.synthetic import MemoryDelta, write_checkpoint

NAMES = ["model.layers.0.self_attn.q_proj.weight", "model.layers.0.mlp.up_proj.weight"]


@pytest.fixture
def base(tmp_path) -> Checkpoint:
    g = torch.Generator().manual_seed(0)
    return Checkpoint(write_checkpoint(tmp_path, {NAMES[0]: torch.randn(16, 16, generator=g),
                                                  NAMES[1]: torch.randn(32, 16, generator=g)}))


def delta(seed: int, density: float = 0.3) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {n: 0.1 * torch.randn(*s, generator=g) * (torch.rand(*s, generator=g) < density)
            for n, s in zip(NAMES, [(16, 16), (32, 16)])}


def test_identical_updates_give_cosine_and_jaccard_one(base) -> None:
    d = delta(1)
    neg = {k: -v for k, v in d.items()}
    other = delta(2)
    df = cross_run(["a", "b", "c", "d"], [MemoryDelta(d), MemoryDelta(dict(d)), MemoryDelta(neg),
                                         MemoryDelta(other)], base, NAMES)
    assert set(df["scope"]) == {"all", "q", "up"}
    for scope in ("all", "q", "up"):
        row = df[(df.run_a == "a") & (df.run_b == "b") & (df.scope == scope)].iloc[0]
        assert row.cosine == pytest.approx(1.0, abs=1e-12) and row.jaccard == pytest.approx(1.0)
        flip = df[(df.run_a == "a") & (df.run_b == "c") & (df.scope == scope)].iloc[0]
        assert flip.cosine == pytest.approx(-1.0, abs=1e-12) and flip.jaccard == pytest.approx(1.0)
    whole = df[(df.run_a == "a") & (df.run_b == "d") & (df.scope == "all")].iloc[0]
    assert whole.params == 16 * 16 + 32 * 16
    assert whole.cosine_base == pytest.approx(math.sqrt(2 / (math.pi * whole.params)))
    # independent masks of density 0.3: Jaccard near its baseline p²/(2p − p²) ≈ 0.176
    assert whole.jaccard_base == pytest.approx(0.09 / 0.51, abs=0.03)
    assert whole.jaccard == pytest.approx(whole.jaccard_base, abs=0.06)
    assert abs(whole.cosine) < 0.15
    # the whole-model norms are those of the concatenated updates
    assert whole.norm_a == pytest.approx(math.sqrt(sum(float((v.double() ** 2).sum()) for v in d.values())))
    assert whole.norm_b == pytest.approx(math.sqrt(sum(float((v.double() ** 2).sum()) for v in other.values())))


def test_reference_cosine_is_the_cosine_to_the_other_groups_mean_update(base) -> None:
    """Hand-checked against the explicit mean of the flattened updates of the other group."""
    from harness.analysis.geometry.cross import reference_cosines

    ds = [delta(s) for s in range(4)]
    df = cross_run(["a", "b", "c", "d"], [MemoryDelta(d) for d in ds], base, NAMES)
    group = {"a": "x", "b": "x", "c": "y", "d": "y"}
    got = reference_cosines(df, group)

    def flat(d):
        return torch.cat([d[n].double().flatten() for n in NAMES])

    vecs = {k: flat(d) for k, d in zip("abcd", ds)}
    for run in "abcd":
        others = [vecs[o] for o in "abcd" if group[o] != group[run]]
        mean = torch.stack(others).mean(0)
        want = float(vecs[run] @ mean / (vecs[run].norm() * mean.norm()))
        assert got[run] == pytest.approx(want, abs=1e-9)
    assert reference_cosines(df, {"a": "x", "b": "x"}) == {}  # one group: no reference direction
