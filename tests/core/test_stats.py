"""harness.core.stats on hand-built cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.core import stats

Z = 1.959963984540054  # the 97.5 % normal quantile


@pytest.mark.parametrize("k,n,lo,hi", [
    # Newcombe (1998), Stat. Med. 17:857, Table I, method 3 (Wilson score interval without correction)
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
])
def test_wilson_textbook_values(k, n, lo, hi):
    ci = stats.wilson(k, n)
    assert ci.estimate == pytest.approx(k / n)
    assert ci.lo == pytest.approx(lo, abs=5e-5) and ci.hi == pytest.approx(hi, abs=5e-5)
    # and the closed form (p + z²/2n ± z·sqrt(p(1−p)/n + z²/4n²)) / (1 + z²/n)
    p = k / n
    centre, half = p + Z**2 / (2 * n), Z * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n**2))
    assert ci.lo == pytest.approx((centre - half) / (1 + Z**2 / n), abs=1e-12)
    assert ci.hi == pytest.approx((centre + half) / (1 + Z**2 / n), abs=1e-12)


def test_wilson_edge_cases():
    assert math.isnan(stats.wilson(0, 0).estimate)
    full = stats.wilson(10, 10)
    assert full.hi == pytest.approx(1.0) and full.lo < 1.0
    assert stats.accuracy_interval([1, 0, 1, 1]) == stats.wilson(3, 4)
    with pytest.raises(ValueError):
        stats.accuracy_interval([0.5, 1])


def test_mcnemar_exact_p_by_hand():
    # 2 items right only in a, 8 right only in b, 5 right in both, 3 in neither
    a = [1] * 2 + [0] * 8 + [1] * 5 + [0] * 3
    b = [0] * 2 + [1] * 8 + [1] * 5 + [0] * 3
    test = stats.mcnemar(a, b)
    assert (test.a_only, test.b_only) == (2, 8)
    # two-sided: 2·P(X ≤ 2), X ~ Bin(10, 1/2) = 2·(1 + 10 + 45)/1024
    assert test.p == pytest.approx(112 / 1024, abs=1e-12)
    assert stats.mcnemar(b, a).p == pytest.approx(112 / 1024, abs=1e-12)
    assert stats.mcnemar([1, 0], [1, 0]).p == 1.0  # no discordant pair
    assert stats.mcnemar([1] * 6, [0] * 6).p == pytest.approx(2 / 64)


def test_paired_bootstrap_known_cases():
    same = stats.paired_bootstrap([1, 0, 1, 1, 0], [1, 0, 1, 1, 0])
    assert (same.estimate, same.lo, same.hi, same.p) == (0.0, 0.0, 0.0, 1.0)
    # a always right, b always wrong: every resample differs by exactly 1; p is the smallest it can be
    apart = stats.paired_bootstrap([1] * 50, [0] * 50, n_boot=999)
    assert (apart.estimate, apart.lo, apart.hi) == (1.0, 1.0, 1.0) and apart.p == pytest.approx(1 / 1000)
    # d = a − b: 120 × (+1), 40 × (−1), 240 × 0 → mean 0.2, sd(d) = sqrt(0.4 − 0.04) = 0.6, se = 0.6/20 = 0.03;
    # the bootstrap interval matches the normal one 0.2 ± 1.96·0.03 to within resampling noise
    a = np.array([1] * 120 + [0] * 40 + [1] * 100 + [0] * 140)
    b = np.array([0] * 120 + [1] * 40 + [1] * 100 + [0] * 140)
    diff = stats.paired_bootstrap(a, b, n_boot=20_000, seed=3)
    assert diff.estimate == pytest.approx(0.2) and diff.n == 400
    assert diff.lo == pytest.approx(0.2 - Z * 0.03, abs=0.006) and diff.hi == pytest.approx(0.2 + Z * 0.03, abs=0.006)
    assert diff.p < 1e-3  # 6.7 standard errors from 0
    assert stats.paired_bootstrap(a, b, n_boot=20_000, seed=3) == diff  # seeded
    # a small effect (30 vs 20 discordant of 400: d̄ = 0.025, se ≈ 0.0176): p near the normal 2·(1 − Φ(d̄/se))
    a2 = np.array([1] * 30 + [0] * 20 + [0] * 350)
    b2 = np.array([0] * 30 + [1] * 20 + [0] * 350)
    small = stats.paired_bootstrap(a2, b2, n_boot=20_000)
    se = math.sqrt((50 / 400 - 0.025**2) / 400)
    from scipy.stats import norm

    assert small.p == pytest.approx(2 * norm.sf(0.025 / se), abs=0.03)
    with pytest.raises(ValueError):
        stats.paired_bootstrap([1, 0], [1])


def test_paired_bootstrap_chunks_agree(monkeypatch):
    """The chunked path (many small index matrices) gives the same resamples as one matrix."""
    a = np.arange(40) % 3 == 0
    b = np.arange(40) % 4 == 0
    whole = stats.paired_bootstrap(a, b, n_boot=500, seed=1)
    monkeypatch.setattr(stats, "_CHUNK", 40 * 7)  # 7 rows per chunk, the last one short
    assert stats.paired_bootstrap(a, b, n_boot=500, seed=1) == whole


def test_seed_mean_t_interval_by_hand():
    m = stats.seed_mean([1, 2, 3, 4, 5])
    # mean 3, sd = sqrt(10/4), t(0.975, 4) = 2.776445 (tables), half-width = t·sd/sqrt(5)
    half = 2.7764451051977987 * math.sqrt(2.5) / math.sqrt(5)
    assert (m.estimate, m.n) == (3.0, 5) and m.sd == pytest.approx(math.sqrt(2.5))
    assert m.lo == pytest.approx(3 - half, abs=1e-9) and m.hi == pytest.approx(3 + half, abs=1e-9)
    two = stats.seed_mean([0.4, 0.6, float("nan")])  # NaN left out; t(0.975, 1) = 12.7062
    assert two.n == 2 and two.hi - two.estimate == pytest.approx(12.706204736 * math.sqrt(0.02) / math.sqrt(2))
    one = stats.seed_mean([0.7])
    assert one.estimate == 0.7 and one.n == 1 and math.isnan(one.lo) and math.isnan(one.hi)
    assert stats.seed_mean([]).n == 0


def test_ema_by_hand():
    np.testing.assert_allclose(stats.ema([0, 1, 1, 1], alpha=0.5), [0, 0.5, 0.75, 0.875])
    out = stats.ema([2, float("nan"), 4], alpha=0.5)
    assert out[0] == 2 and math.isnan(out[1]) and out[2] == 3
    np.testing.assert_allclose(stats.ema([5, 7], alpha=1.0), [5, 7])
    assert stats.ema([]).size == 0
    with pytest.raises(ValueError):
        stats.ema([1], alpha=0)


def test_distinguishable():
    assert stats.distinguishable(0.01, 0.2) and stats.distinguishable(-0.3, -0.1)
    assert not stats.distinguishable(-0.01, 0.2) and not stats.distinguishable(0.0, 0.2)
    assert stats.distinguishable(0.3, 0.5, null=0.25) and not stats.distinguishable(0.2, 0.5, null=0.25)
    assert not stats.distinguishable(float("nan"), 1.0) and not stats.distinguishable(None, 1.0)
