"""Exact per-token KL: the closed form on hand-built 2-token distributions, a model against itself (0) and
against a copy with one weight perturbed (> 0), and the batched, left-padded sequence sums against one
unpadded full forward per sequence."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from harness.data.models import load_model
from harness.measure.kl import sequence_kls, token_kl


def test_token_kl_closed_form_two_tokens():
    """p = (1/4, 3/4), q = (1/2, 1/2): KL(p‖q) = 1/4 ln(1/2) + 3/4 ln(3/2), KL(q‖p) = 1/2 ln 2 + 1/2 ln(2/3);
    logits are unnormalised (any shift per row gives the same distribution)."""
    lp = torch.log(torch.tensor([[0.25, 0.75]])) + 3.0
    lq = torch.tensor([[-1.0, -1.0]])
    fwd, rev = token_kl(lp, lq)
    assert fwd.dtype == torch.float64
    assert fwd.item() == pytest.approx(0.25 * math.log(0.5) + 0.75 * math.log(1.5), abs=1e-7)
    assert rev.item() == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(2 / 3), abs=1e-7)
    # a batch of positions: identical rows give 0, swapped rows swap forward and reverse
    f2, r2 = token_kl(torch.cat([lp, lq]), torch.cat([lp, lp]))
    assert f2[0].item() == pytest.approx(0, abs=1e-7)
    assert f2[1].item() == pytest.approx(rev.item(), abs=1e-7) and r2[1].item() == pytest.approx(fwd.item(), abs=1e-7)


@pytest.fixture(scope="module")
def tiny(tiny_base):
    model, tok = load_model(tiny_base)
    return model.eval(), tok


def _sequences(tok):
    """Prompts and completions of different lengths (left padding and the completion mask both matter)."""
    prompts = [tok(p)["input_ids"] for p in ("Say 3", "What is 1 + 2?", "x")]
    completions = [tok(c)["input_ids"] for c in ("42 is it", "7", "abc")]
    return prompts, completions


def test_model_against_itself_is_zero_and_perturbed_is_positive(tiny):
    model, tok = tiny
    prompts, completions = _sequences(tok)
    same = sequence_kls(model, model, prompts, completions, batch_size=2)
    assert np.abs(same["forward"]).max() < 1e-6 and np.abs(same["reverse"]).max() < 1e-6
    assert list(same["tokens"]) == [len(c) for c in completions]
    other = copy.deepcopy(model)
    with torch.no_grad():
        w = other.model.layers[0].mlp.down_proj.weight
        w[0, 0] += 0.5  # one weight
    moved = sequence_kls(model, other, prompts, completions, batch_size=2)
    assert (moved["forward"] > 1e-9).all() and (moved["reverse"] > 1e-9).all()


def test_batched_sums_equal_unpadded_forward(tiny):
    """Left-padded batches with logits only at the completion positions give the per-sequence sums of one
    plain forward over each unpadded sequence."""
    model, tok = tiny
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.05 * torch.randn_like(p))
    prompts, completions = _sequences(tok)
    got = sequence_kls(model, other, prompts, completions, pad=0, batch_size=3)
    for i, (p, c) in enumerate(zip(prompts, completions)):
        ids = torch.tensor([p + c])
        with torch.no_grad():
            lb, lt = model(input_ids=ids).logits[0], other(input_ids=ids).logits[0]
        pos = slice(len(p) - 1, len(p) + len(c) - 1)  # logits at t predict token t + 1
        f, r = token_kl(lb[pos], lt[pos])
        assert got["forward"][i] == pytest.approx(f.sum().item(), rel=1e-4, abs=1e-6)
        assert got["reverse"][i] == pytest.approx(r.sum().item(), rel=1e-4, abs=1e-6)
        assert f.sum().item() > 1e-4  # the comparison is not between zeros


@pytest.mark.parametrize("override, needle", [
    ("kl.sample_from=both", "bad kl.sample_from 'both'; valid: base | tuned"),
    ("kl.samples=0", "bad kl.samples 0; valid: an integer >= 1"),
    ("kl.temperature=0", "bad kl.temperature 0; valid: a number > 0"),
    ("passk.n=0", "bad passk.n 0; valid: an integer >= 1"),
    ("passk.n_prompts=-3", "bad passk.n_prompts -3"),
])
def test_bad_settings_refused_before_launch(override, needle):
    from harness.launch.validate import check_launch
    from tests.conftest import CONF

    errors = check_launch(["model=tiny", "logger=none", override], False, CONF)
    assert len(errors) == 1 and needle in errors[0], errors
    assert check_launch(["model=tiny", "logger=none", "kl.enabled=true", "passk.enabled=true"], False, CONF) == []
