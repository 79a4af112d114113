"""U4 (retraining techniques) and U5 (augmentation and gradient similarity) on synthetic sweeps: hand-made
``prompts.csv`` and ``augment.csv`` files read by the real
claim; supported, contradicted and inconclusive where the numbers say so."""

from __future__ import annotations

import pytest

from harness.claims import CONTRADICTED, INCONCLUSIVE, SUPPORTED
from harness.claims.unlearnability import RAISE
from harness.measure.passrate import PROMPTS_COLUMNS
from tests.claims.test_claims import make_run, verdict
from tests.conftest import write_run


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


# --- U4 --------------------------------------------------------------------------------------------------


def retrain_run(sweep, tech: str, seed: int, learned: list[int], source: str | None = None):
    """A done retrain run (``+retrain_arm=<tech>``, of first study ``source`` when given) whose prompts.csv has
    prompts p0.. learned (pass@1 at end 0.5) or not (0.0)."""
    rows = [",".join(PROMPTS_COLUMNS)] + [
        f"p{i},train,d2,0.0,{0.5 if x else 0.0},8,8,1,0,1,1,{'learnable' if x else 'unlearnable'},0"
        for i, x in enumerate(learned)]
    extra = [f"retrain.from={source}"] if source else []
    return write_run(sweep, ["adapter=full", "objective=rlvr", f"seed={seed}", f"+retrain_arm={tech}", *extra],
                     cfg={"retrain": {"technique": tech, "from": source}, "passrate": {"tau": 0.1}},
                     files={"prompts.csv": "\n".join(rows) + "\n"})


N = 20


@pytest.mark.parametrize(("more", "expected"), [
    (0, SUPPORTED),         # the technique learns the same prompts as plain retraining
    (15, CONTRADICTED),     # it learns 15 of 20 more
    (None, INCONCLUSIVE)])  # no technique runs
def test_u4_techniques_do_not_resolve_unlearnability(tmp_path, more, expected):
    for s in range(3):
        base = [int(i < 3) for i in range(N)]
        retrain_run(tmp_path, "plain", s, base)
        if more is not None:
            retrain_run(tmp_path, "hot", s, [int(i < 3 + more) for i in range(N)])
            retrain_run(tmp_path, "more_visits", s, base)
    v, why = verdict(tmp_path, "U4")
    assert v == expected, why
    if more is None:
        assert "sweeps=unlearnable_retrain" in why


def test_u4_inconclusive_when_one_technique_crosses_the_margin(tmp_path):
    for s in range(3):
        retrain_run(tmp_path, "plain", s, [0] * N)
        # seed-dependent: 0, 2 or 4 of 20 learned -> mean 0.1, the interval spans RESOLVES
        retrain_run(tmp_path, "high_lr", s, [int(i < 2 * s) for i in range(N)])
    v, why = verdict(tmp_path, "U4")
    assert v == INCONCLUSIVE, why


def test_u4_pairs_a_technique_with_plain_retraining_of_the_same_first_study(tmp_path):
    # first study a: plain learns none, hot 15 of 20: hot − plain = 0.75 in every seed; first study b has plain
    # runs only, which learn those 15 too: pairing hot with any of b's plain runs (same seeds) would lower it
    for s in range(3):
        retrain_run(tmp_path, "plain", s, [0] * N, source="/first/a")
        retrain_run(tmp_path, "hot", s, [int(i < 15) for i in range(N)], source="/first/a")
        retrain_run(tmp_path, "plain", s, [int(i < 15) for i in range(N)], source="/first/b")
    v, why = verdict(tmp_path, "U4")
    assert v == CONTRADICTED and "plain retraining 0.75 [" in why, why
