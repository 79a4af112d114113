"""Gradient similarity: the count sketch preserves cosines within the stated bound; identical prompts have
similarity 1; sketched cosines of real (tiny-model) gradients match the exact ones; the permutation test on the
prompt x prompt matrix finds a real group effect and gives uniform p-values without one."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from harness.measure.gradsim import (
    CountSketch,
    bootstrap_ci,
    cosine_error_bound,
    cosine_matrix,
    gradient_params,
    loglik_gradient_sketch,
    mann_whitney,
    mean_to_rest,
    permutation_test,
    pooled_cosine_matrix,
    similarity_to_rest,
)


def _pair(p: int, c: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense unit vectors x, y with cos(x, y) = c exactly."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(p, generator=g, dtype=torch.float64)
    z = torch.randn(p, generator=g, dtype=torch.float64)
    x /= x.norm()
    z -= (z @ x) * x
    z /= z.norm()
    return x, c * x + math.sqrt(1 - c * c) * z


def _blocks(v: torch.Tensor) -> dict[str, torch.Tensor]:
    # three "parameters" of different shapes, as a model has
    return {"a.weight": v[:20_000].reshape(100, 200), "b.weight": v[20_000:50_000].reshape(300, 100),
            "c.bias": v[50_000:]}


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a @ b / (a.norm() * b.norm()))


@pytest.mark.parametrize("c", [0.0, 0.3, -0.5, 0.8, 0.95])
def test_count_sketch_preserves_cosines(c):
    p, trials = 60_000, 24
    x, y = _pair(p, c, seed=1)
    # the rigorous (Chebyshev) bound at d = 2^16: |error| <= 2ε/(1-ε) except with probability <= 6/(dε²) = 1%
    d_big = 2**16
    eps = math.sqrt(6 / (d_big * 0.01))
    bound, fail = cosine_error_bound(d_big, eps)
    assert fail == pytest.approx(0.01)
    big = [abs(_cos((s := CountSketch(d_big, seed)).project(_blocks(x)), s.project(_blocks(y))) - c)
           for seed in range(trials)]
    assert max(big) <= bound
    # the typical error at d = 1024: sd ≈ (1 - c²)/sqrt(d) (dense vectors), checked on the RMS over seeds
    d = 1024
    err = np.array([_cos((s := CountSketch(d, seed)).project(_blocks(x)), s.project(_blocks(y))) - c
                    for seed in range(trials)])
    sd = (1 - c * c) / math.sqrt(d)
    assert np.sqrt(np.mean(err**2)) <= 1.6 * sd + 1e-12
    assert abs(err.mean()) <= 4 * sd / math.sqrt(trials) + 1e-12


def test_count_sketch_is_a_fixed_linear_map():
    x, y = _pair(60_000, 0.5, seed=2)
    s1, s2 = CountSketch(256, seed=7), CountSketch(256, seed=7)
    bx = _blocks(x)
    # fixed: the same seed gives the same projection in a fresh instance, whatever the order of the blocks
    assert torch.allclose(s1.project(bx), s2.project(dict(reversed(list(bx.items())))), atol=1e-15)
    # linear, and identical inputs have cosine exactly 1
    assert torch.allclose(s1.project(_blocks(2 * x - y)), 2 * s1.project(bx) - s1.project(_blocks(y)))
    assert _cos(s1.project(bx), s2.project(bx)) == pytest.approx(1.0, abs=1e-12)
    # norms are preserved in expectation: ‖Sx‖² ≈ 1
    assert abs(float(s1.project(bx).norm() ** 2) - 1) < 6 * math.sqrt(2 / 256)
    # another seed is another projection
    assert not torch.equal(s1.project(bx), CountSketch(256, seed=8).project(bx))


def test_group_statistics():
    m = cosine_matrix(np.array([[1.0, 0], [1, 0], [0, 1]]))
    assert np.allclose(m, [[1, 1, 0], [1, 1, 0], [0, 0, 1]])
    assert np.allclose(similarity_to_rest(np.array([[1.0, 0], [1, 0], [0, 1]])), [0.5, 0.5, 0])
    assert np.isnan(similarity_to_rest(np.ones((1, 3)))).all()
    lo, hi = bootstrap_ci(np.array([0.1, 0.2, 0.3, 0.4]), n_boot=500)
    assert 0.1 <= lo <= 0.25 <= hi <= 0.4
    assert mann_whitney(np.arange(10.0), np.arange(10.0) + 100) < 0.001
    assert math.isnan(mann_whitney(np.array([1.0]), np.arange(5.0)))


@pytest.fixture(scope="module")
def tiny(tiny_base):
    from harness.data.models import load_model

    model, tok = load_model(tiny_base)
    return model.eval(), tok


def test_identical_prompts_have_similarity_one(tiny):
    model, tok = tiny
    names = gradient_params(model)
    sketch = CountSketch(1024, seed=0)
    rollouts = [{"text": " 7", "eos": True}, {"text": " 7\nok", "eos": False}]
    a, na, ta = loglik_gradient_sketch(model, tok, "3 + 4 =\nAnswer:", rollouts, names, sketch)
    b, nb, tb = loglik_gradient_sketch(model, tok, "3 + 4 =\nAnswer:", rollouts, names, sketch)
    other, _, _ = loglik_gradient_sketch(model, tok, "91 + 8 =\nAnswer:", [{"text": " 99", "eos": True}], names,
                                         sketch)
    c = cosine_matrix(np.stack([a, b, other]))
    assert c[0, 1] == pytest.approx(1.0, abs=1e-9)
    assert na == pytest.approx(nb) and ta == tb == 3 + 5  # " 7" + eos, " 7\nok": character tokens
    assert c[0, 2] < 0.999
    assert similarity_to_rest(np.stack([a, b]))[0] == pytest.approx(1.0, abs=1e-9)
    # requires_grad flags are restored
    assert all(p.requires_grad for p in model.parameters())


def test_sketched_gradient_cosine_matches_exact(tiny):
    model, tok = tiny
    names = gradient_params(model)
    params = dict(model.named_parameters())

    def exact(prompt, text):
        sk = CountSketch(8, 0)
        loglik_gradient_sketch(model, tok, prompt, [{"text": text, "eos": True}], names, sk)  # warm
        model.zero_grad()
        ids_p = tok(prompt)["input_ids"]
        ids_c = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        x = torch.tensor([ids_p + ids_c])
        with torch.enable_grad():
            logp = torch.log_softmax(model(input_ids=x).logits[0, :-1], -1)
            tgt = x[0, 1:]
            ll = logp.gather(-1, tgt[:, None])[len(ids_p) - 1 :].mean()
            grads = torch.autograd.grad(ll, [params[n] for n in names])
        return torch.cat([g.reshape(-1) for g in grads]).double()

    ga, gb = exact("12 + 5 =\nAnswer:", " 17"), exact("12 + 6 =\nAnswer:", " 18")
    c = _cos(ga, gb)
    sketch = CountSketch(4096, seed=3)
    a, norm_a, _ = loglik_gradient_sketch(model, tok, "12 + 5 =\nAnswer:", [{"text": " 17", "eos": True}], names,
                                          sketch)
    b, _, _ = loglik_gradient_sketch(model, tok, "12 + 6 =\nAnswer:", [{"text": " 18", "eos": True}], names, sketch)
    assert norm_a == pytest.approx(float(ga.norm()), rel=1e-4)
    assert abs(cosine_matrix(np.stack([a, b]))[0, 1] - c) <= 4 * (1 - c * c) / math.sqrt(4096) + 1e-3


# --- the group permutation test --------------------------------------------------------------------------


def _prompt_matrix(rng: np.random.Generator, n: int, effect: np.ndarray, dim: int = 200) -> np.ndarray:
    """Cosine matrix of n prompt "gradients" sharing a common direction with per-prompt weight ``effect + u_i``:
    u_i ~ N(0, 0.5²) is a prompt-level random effect, so every row's values share terms (as real prompts do)."""
    common = rng.normal(size=dim)
    w = effect + 0.5 * rng.normal(size=n)
    return cosine_matrix(w[:, None] * common[None, :] / np.sqrt(dim) + rng.normal(size=(n, dim)) / np.sqrt(dim))


def test_permutation_test_exact_small_case():
    # 4 prompts, a = {0, 1}, b = {2, 3}; to_rest scores: row means of the off-diagonal entries
    sim = np.array([[1, .9, .1, .1], [.9, 1, .1, .3], [.1, .1, 1, .2], [.1, .3, .2, 1]])
    labels = ["a", "a", "b", "b"]
    score = mean_to_rest(sim)
    assert np.allclose(score, [1.1 / 3, 1.3 / 3, 0.4 / 3, 0.6 / 3])
    r = permutation_test(sim, labels, "a", "b", n_perm=4000, seed=1)
    assert r.statistic == pytest.approx((1.1 + 1.3 - 0.4 - 0.6) / 6)
    # 6 labellings, the observed one and its mirror image are the two most extreme: exact p = 2/6
    assert r.p == pytest.approx(1 / 3, abs=0.03) and (r.n_a, r.n_b, r.n_perm) == (2, 2, 4000)
    w = permutation_test(sim, labels, "a", "b", n_perm=4000, seed=1, statistic="within")
    assert w.statistic == pytest.approx(0.9 - 0.2) and w.p == pytest.approx(1 / 3, abs=0.03)
    # too few prompts: no test
    assert math.isnan(permutation_test(sim, ["a", "b", "b", "b"], "a", "b", statistic="within").p)
    # NaN entries (pairs never measured together) are skipped, not read as 0
    sim_nan = sim.copy()
    sim_nan[0, 3] = sim_nan[3, 0] = np.nan
    assert mean_to_rest(sim_nan)[0] == pytest.approx(1.0 / 2)


def test_permutation_test_finds_a_group_effect():
    rng = np.random.default_rng(0)
    # 12 "easy" prompts aligned with the common direction, 12 "unlearnable" ones not, 6 others
    labels = ["easy"] * 12 + ["unlearnable"] * 12 + ["other"] * 6
    sim = _prompt_matrix(rng, 30, np.array([2.0] * 12 + [0.0] * 12 + [1.0] * 6))
    for stat in ("to_rest", "within"):
        r = permutation_test(sim, labels, "easy", "unlearnable", n_perm=2000, seed=0, statistic=stat)
        assert r.statistic > 0 and r.p <= 2 / 2001, (stat, r)
        assert r.statistic > 3 * r.null_sd
    # the p-value never reaches 0: the +1 correction
    assert permutation_test(sim, labels, "easy", "unlearnable", n_perm=99).p >= 1 / 100


def test_permutation_p_values_uniform_without_effect():
    """No group effect (labels independent of the prompts): over many seeds the p-values are uniform (KS test and
    a coarse histogram), although each prompt's score shares pairwise terms with the others'. A naive test that
    treats the within-group pairwise cosines as independent samples is anti-conservative on the same data
    (~46 % false positives at 5 % over 1000 seeds); Mann–Whitney on the per-prompt scores is not (its null is
    itself a label permutation: ~4.4 %), so the issue's "Mann–Whitney is optimistic" holds for pairwise terms only."""
    from scipy.stats import kstest, mannwhitneyu

    ps, naive, mw = [], [], []
    for seed in range(300):
        rng = np.random.default_rng(seed)
        sim = _prompt_matrix(rng, 24, np.ones(24))
        labels = rng.permutation(["a"] * 8 + ["b"] * 8 + ["c"] * 8)
        ps.append(permutation_test(sim, labels, "a", "b", n_perm=199, seed=seed).p)
        ia, ib = np.flatnonzero(labels == "a"), np.flatnonzero(labels == "b")
        pairs = [sim[np.ix_(i, i)][np.triu_indices(len(i), 1)] for i in (ia, ib)]
        naive.append(mannwhitneyu(*pairs).pvalue)
        score = mean_to_rest(sim)
        mw.append(mann_whitney(score[ia], score[ib]))
    ps, naive, mw = np.array(ps), np.array(naive), np.array(mw)
    assert kstest(ps, "uniform").pvalue > 0.01
    hist = np.histogram(ps, bins=5, range=(0, 1))[0] / len(ps)
    assert hist.min() > 0.12 and hist.max() < 0.28
    assert 0.02 <= (ps <= 0.05).mean() <= 0.09
    assert (naive <= 0.05).mean() > 0.2  # pairwise terms are not independent samples
    assert (mw <= 0.05).mean() <= 0.09


def test_pooled_cosine_matrix_over_seeds():
    x = np.array([[1.0, 0], [0, 1], [1, 1]])
    # seed 0 sketched p, q; seed 1 sketched p, r (with another direction for p)
    ids, mean, count = pooled_cosine_matrix([(["p", "q"], x[[0, 1]]), (["p", "r"], np.array([[1.0, 1], [1, 1]]))])
    assert ids == ["p", "q", "r"]
    assert count.tolist() == [[2, 1, 1], [1, 1, 0], [1, 0, 1]]
    assert mean[0, 1] == pytest.approx(0.0) and mean[0, 2] == pytest.approx(1.0) and np.isnan(mean[1, 2])
    assert mean[0, 0] == pytest.approx(1.0)
