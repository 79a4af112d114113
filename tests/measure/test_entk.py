"""eNTK Gram (exact, no P-sized per-example gradients) and rotation/rescaling on known cases."""

from __future__ import annotations

import math

import torch

from harness.data.models import load_model
from harness.data.tasks import Example
from harness.measure.entk import answer_logprob, compare_grams, entk_gram
from harness.train.adapters.base import PROJECTIONS


def explicit_gram(model, tok, examples):
    """Reference: per-example autograd gradients over the projection weights, flattened and dotted."""
    from harness.measure.entk import _probe_batch

    params = [m.weight for n, m in model.named_modules()
              if isinstance(m, torch.nn.Linear) and n.rsplit(".", 1)[-1] in PROJECTIONS]
    rows = []
    for e in examples:
        ids, attn, amask = _probe_batch(tok, [e], "cpu")
        f = answer_logprob(model, ids, attn, amask).sum()
        rows.append(torch.cat([g.flatten() for g in torch.autograd.grad(f, params)]).double())
    j = torch.stack(rows)
    return j @ j.T


def test_gram_equals_explicit_per_example_gradients(tiny_base):
    model, tok = load_model(tiny_base)
    exs = [Example(str(i), f"Calculate {i} + {i + 3}.\nAnswer:", str(2 * i + 3), "") for i in range(6)]
    fast = entk_gram(model, tok, exs, batch_size=4)  # two batches of different padded lengths
    ref = explicit_gram(model, tok, exs)
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-6 * ref.abs().max().item())


def _spd(eigs, q):
    return q @ torch.diag(torch.tensor(eigs, dtype=torch.float64)) @ q.T


def test_pure_rescaling_has_no_rotation():
    q, _ = torch.linalg.qr(torch.randn(10, 10, dtype=torch.float64))
    eigs = [10.0, 8, 6, 4, 2, 1, 0.5, 0.25, 0.1, 0.05]
    k0 = _spd(eigs, q)
    k1 = _spd([2 * e for e in eigs], q)  # every eigenvalue doubled along the same eigenvectors
    out = compare_grams(k0, k1, k=4)
    assert out["entk_max_angle_deg"] < 1e-4
    assert math.isclose(out["entk_eig_rel_change"], 1.0, rel_tol=1e-9)
    assert math.isclose(out["entk_top_eig_ratio"], 2.0, rel_tol=1e-9)


def test_known_rotation_is_recovered():
    q, _ = torch.linalg.qr(torch.randn(8, 8, dtype=torch.float64))
    eigs = [9.0, 7, 5, 3, 1, 0.5, 0.2, 0.1]
    theta = math.radians(25)
    # rotate the top-1 eigenvector towards eigenvector 6 (outside the top-2 subspace) by theta
    rot = torch.eye(8, dtype=torch.float64)
    rot[[0, 0, 5, 5], [0, 5, 0, 5]] = torch.tensor([math.cos(theta), -math.sin(theta),
                                                    math.sin(theta), math.cos(theta)], dtype=torch.float64)
    k0 = _spd(eigs, q)
    k1 = _spd(eigs, q @ rot)
    out = compare_grams(k0, k1, k=2)
    assert math.isclose(out["entk_max_angle_deg"], 25.0, abs_tol=1e-6)
    assert out["entk_eig_rel_change"] < 1e-9  # same spectrum: pure rotation


def test_small_rotation_is_not_lost():
    """Angles come from :func:`harness.core.linalg.principal_angles` (atan2): a 1e-9 rad rotation reads 1e-9 rad,
    where arccos of a cosine that rounds to 1 read 0."""
    q, _ = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    eigs = [6.0, 5, 4, 3, 2, 1]
    t = 1e-9
    rot = torch.eye(6, dtype=torch.float64)
    rot[[0, 0, 4, 4], [0, 4, 0, 4]] = torch.tensor([math.cos(t), -math.sin(t), math.sin(t), math.cos(t)],
                                                   dtype=torch.float64)
    out = compare_grams(_spd(eigs, q), _spd(eigs, q @ rot), k=2)
    assert math.isclose(out["entk_max_angle_deg"], math.degrees(t), rel_tol=1e-3)


def test_base_gram_keyed_by_weights_not_path(tmp_path, tiny_base):
    """Regression: the base Gram was cached by the base's *path*, so a checkpoint retrained at the same path
    reused the stale Gram. Keyed by the weights hash, the new weights get their own Gram."""
    import shutil

    from harness.measure.entk import base_gram
    from tests.conftest import compose

    model_cfg = compose("model=tiny").model
    path = tmp_path / "base"
    shutil.copytree(tiny_base, path)
    exs = [Example(str(i), f"Calculate {i} + 2.\nAnswer:", str(i + 2), "") for i in range(4)]
    first = base_gram(model_cfg, path, exs)
    assert torch.equal(base_gram(model_cfg, path, exs), first)  # cached: same tensor back

    model, tok = load_model(path)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("proj.weight"):
                p.mul_(1.5)  # "retrained" at the same path
    model.save_pretrained(path)
    again = base_gram(model_cfg, path, exs)
    fresh = entk_gram(*load_model(path), exs)
    assert not torch.allclose(again, first)
    torch.testing.assert_close(again, fresh)
