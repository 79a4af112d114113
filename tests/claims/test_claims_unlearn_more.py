"""U5 (augmentation and gradient similarity) on synthetic sweeps: hand-made ``augment.csv`` files read by the real
claim; supported, contradicted and inconclusive where the numbers say so."""

from __future__ import annotations

import pytest

from harness.claims import CONTRADICTED, INCONCLUSIVE, SUPPORTED
from harness.claims.unlearnability import RAISE
from tests.claims.test_claims import make_run, verdict


def augment_csv(unlearnable: float, learnable: float = 0.0) -> str:
    """Two unlearnable and one learnable prompt, each with both kinds; ``delta`` around the given means."""
    rows = ["prompt_id,class,kind,n_aug,sim_orig,sim_aug,delta"]
    for pid, cls, d in (("a", "unlearnable", unlearnable - 0.01), ("b", "unlearnable", unlearnable + 0.01),
                        ("c", "learnable", learnable)):
        for kind in ("rephrase", "decompose"):
            rows.append(f"{pid},{cls},{kind},1,0.1,{0.1 + d},{d}")
    return "\n".join(rows) + "\n"


@pytest.mark.parametrize(("rise", "expected"), [(0.0, SUPPORTED), (0.2, CONTRADICTED), (None, INCONCLUSIVE)])
def test_u5_augmentation_does_not_raise_similarity(tmp_path, rise, expected):
    for s in range(3):
        files = {} if rise is None else {"augment.csv": augment_csv(rise + 0.003 * s)}
        make_run(tmp_path, "full", "rlvr", s, acc=0.5, files=files)
    v, why = verdict(tmp_path, "U5")
    assert v == expected, why
    if rise is None:
        assert "augment.csv" in why
    else:
        assert f"vs {RAISE:g}" in why


def test_u5_inconclusive_when_the_interval_crosses_the_margin(tmp_path):
    for s, rise in enumerate((0.0, 0.04, -0.02)):
        make_run(tmp_path, "full", "rlvr", s, acc=0.5, files={"augment.csv": augment_csv(rise)})
    v, why = verdict(tmp_path, "U5")
    assert v == INCONCLUSIVE and "spans" in why, why
