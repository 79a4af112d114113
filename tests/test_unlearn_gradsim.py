"""Gradient similarity: the count sketch preserves cosines within the stated bound; identical prompts have
similarity 1; sketched cosines of real (tiny-model) gradients match the exact ones."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from harness.unlearn.gradsim import (
    CountSketch,
    bootstrap_ci,
    cosine_error_bound,
    cosine_matrix,
    gradient_params,
    loglik_gradient_sketch,
    mann_whitney,
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
    from harness.models import load_model

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
