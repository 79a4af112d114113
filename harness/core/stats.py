"""Statistics for the tables and figures, one definition each: a proportion's Wilson interval, paired tests of
two accuracies on the same prompts (bootstrap and McNemar's exact test), the mean over seeds with its
t-interval, an EMA smoother for curves, and whether an interval is distinguishable from a null value.

A leaf module (numpy and scipy only), so run-time evaluation and the report share it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import signal, stats

CONFIDENCE = 0.95
BOOT = 10_000  # bootstrap resamples: the 2.5 % quantile then rests on 250 draws
_CHUNK = 1 << 22  # index entries per bootstrap chunk (32 MiB of int64): memory stays flat for large splits


@dataclass(frozen=True)
class Interval:
    """An estimate with its two-sided interval (NaN bounds where none can be given)."""

    estimate: float
    lo: float
    hi: float


@dataclass(frozen=True)
class PairedDiff(Interval):
    """mean(a) − mean(b) on the same items, its bootstrap interval and two-sided bootstrap p-value."""

    p: float
    n: int


@dataclass(frozen=True)
class McNemar:
    """McNemar's exact test: items right in a only (``a_only``), in b only (``b_only``), two-sided p."""

    a_only: int
    b_only: int
    p: float


@dataclass(frozen=True)
class SeedMean(Interval):
    """Mean over seeds, its t-interval (NaN for n < 2), the sample standard deviation and n."""

    sd: float
    n: int


def wilson(k: int, n: int, confidence: float = CONFIDENCE) -> Interval:
    """k successes in n trials: the proportion and its Wilson score interval (scipy's ``binomtest``).

    Wilson, not the normal approximation: it stays inside [0, 1] and keeps its coverage at 0/n and n/n, which
    small held-out splits hit. n = 0 gives NaN."""
    if n <= 0:
        return Interval(math.nan, math.nan, math.nan)
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return Interval(k / n, float(ci.low), float(ci.high))


def accuracy_interval(scores: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """Wilson interval of the mean of 0/1 scores."""
    x = np.asarray(scores, dtype=float)
    if x.size and not np.isin(x, (0.0, 1.0)).all():
        raise ValueError("accuracy_interval takes 0/1 scores")
    return wilson(int(x.sum()), int(x.size), confidence)


def _pair(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired scores must be two 1-D arrays of one length, got {a.shape} and {b.shape}")
    return a, b


def paired_bootstrap(a: Sequence[float], b: Sequence[float], n_boot: int = BOOT, seed: int = 0,
                     confidence: float = CONFIDENCE) -> PairedDiff:
    """Difference of two accuracies on the same items (a[i], b[i] score item i), by the paired bootstrap.

    Items are resampled with replacement, keeping each pair together, so item difficulty cancels. The interval
    is the percentile interval of the resampled differences; p is two-sided, the share of resampled
    differences, centred on the estimate, at least as far from it as the estimate is from 0 (with +1 in both
    counts so that p > 0). Seeded and vectorised (one index matrix per chunk)."""
    a, b = _pair(a, b)
    n = a.size
    if n == 0:
        return PairedDiff(math.nan, math.nan, math.nan, math.nan, 0)
    d = a - b
    est = float(d.mean())
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK // n)
    means = np.concatenate([d[rng.integers(0, n, size=(min(rows, n_boot - i), n))].mean(axis=1)
                            for i in range(0, n_boot, rows)])
    alpha = 1 - confidence
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    # tolerance: resampled means are sums of n terms; an exact tie must not be lost to rounding
    extreme = np.abs(means - est) >= abs(est) - 1e-12
    p = (1 + int(extreme.sum())) / (n_boot + 1) if est != 0 else 1.0
    return PairedDiff(est, float(lo), float(hi), float(min(p, 1.0)), int(n))


def mcnemar(a: Sequence[float], b: Sequence[float]) -> McNemar:
    """McNemar's exact test of two 0/1 scorings of the same items: under the null a discordant item is right
    in a or in b with probability 1/2 each, so the count right in a only is Binomial(discordant, 1/2)
    (``scipy.stats.binomtest``). No discordant items: p = 1."""
    a, b = _pair(a, b)
    if not (np.isin(a, (0.0, 1.0)).all() and np.isin(b, (0.0, 1.0)).all()):
        raise ValueError("mcnemar takes 0/1 scores")
    a_only = int(((a == 1) & (b == 0)).sum())
    b_only = int(((a == 0) & (b == 1)).sum())
    if a_only + b_only == 0:
        return McNemar(0, 0, 1.0)
    return McNemar(a_only, b_only, float(stats.binomtest(a_only, a_only + b_only, 0.5).pvalue))


def seed_mean(values: Sequence[float], confidence: float = CONFIDENCE) -> SeedMean:
    """Mean over seeds with its Student-t interval: mean ± t_{n−1} · sd/√n. NaN values are left out; with
    n = 1 there is a mean but no interval (NaN bounds, NaN sd)."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = int(x.size)
    if n == 0:
        return SeedMean(math.nan, math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if n == 1:
        return SeedMean(mean, math.nan, math.nan, math.nan, 1)
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return SeedMean(mean, mean - half, mean + half, sd, n)


def ema(values: Sequence[float], alpha: float = 0.1) -> np.ndarray:
    """Exponential moving average of a curve: s₀ = x₀, sₜ = α·xₜ + (1 − α)·sₜ₋₁ (``scipy.signal.lfilter``).

    NaN points (a step that logged no value) are skipped and stay NaN in the output; the average runs over
    the others. Smaller ``alpha`` smooths more (≈ a window of 2/α − 1 points)."""
    if not 0 < alpha <= 1:
        raise ValueError(f"ema: alpha must be in (0, 1], got {alpha}")
    x = np.asarray(values, dtype=float)
    out = np.full(x.shape, np.nan)
    ok = ~np.isnan(x)
    if ok.any():
        y = x[ok]
        out[ok] = signal.lfilter([alpha], [1.0, alpha - 1.0], y, zi=[(1.0 - alpha) * y[0]])[0]
    return out


def distinguishable(lo: float | None, hi: float | None, null: float = 0.0) -> bool:
    """True iff the interval [lo, hi] excludes ``null``: the effect is told apart from it at this
    confidence. A missing (None/NaN) bound is not distinguishable."""
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return False
    return lo > null or hi < null


def numeric(values) -> np.ndarray:
    """The finite numbers among ``values`` (None, NaN, text dropped)."""
    import pandas as pd

    v = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)
    return v[np.isfinite(v)]
