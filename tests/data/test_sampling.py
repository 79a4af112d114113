"""Keyed sampling (harness.data.sampling): an exact draw from softmax(logits / T), and rollouts that do not depend on
how a generation batch is split over processes or calls."""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from harness.data.models import load_model
from harness.data.sampling import KeyedGumbel, keyed_generate


def test_keyed_gumbel_samples_the_tempered_softmax():
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0, 0.5])
    temperature, n = 0.7, 20000
    proc = KeyedGumbel(seed=3, call=0, rows=list(range(n)), temperature=temperature)
    picks = proc(None, logits.expand(n, -1).clone()).argmax(-1)
    observed = torch.bincount(picks, minlength=5).numpy()
    expected = torch.softmax(logits.double() / temperature, -1).numpy() * n
    assert stats.chisquare(observed, expected).pvalue > 1e-3  # fixed keys: the same counts every time


def test_keyed_gumbel_noise_depends_on_the_key_only():
    scores = torch.randn(4, 11)
    a = KeyedGumbel(0, 0, [10, 11, 12, 13])(None, scores.clone())
    b = KeyedGumbel(0, 0, [12, 13])(None, scores[2:].clone())
    assert torch.equal(a[2:], b)  # rows 12 and 13 get the same noise whatever else is in the batch
    c = KeyedGumbel(1, 0, [12, 13])(None, scores[2:].clone())
    assert not torch.equal(b, c)  # another seed, other noise


@pytest.fixture(scope="module")
def tiny(tiny_base):
    return tiny_base


def _sample(path, prompts, seed, world, rank, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", str(world))
    monkeypatch.setenv("RANK", str(rank))
    model, tok = load_model(path)
    keyed_generate(model, seed)
    enc = tok(prompts, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.generate(**enc, do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=10,
                             min_new_tokens=10, pad_token_id=tok.pad_token_id)
    return out[:, enc["input_ids"].shape[1]:]


def test_rollouts_are_the_same_on_one_or_two_processes(tiny, monkeypatch):
    """8 completions (2 prompts x 4, as TRL lays a group batch out) sampled by one process, or in two halves by
    ranks 0 and 1 of two: the same tokens, row by row, though the halves are padded differently."""
    prompts = ["Say the digit 3 (1)"] * 4 + ["What is 12 + 7?"] * 4
    one = _sample(tiny, prompts, seed=5, world=1, rank=0, monkeypatch=monkeypatch)
    first = _sample(tiny, prompts[:4], seed=5, world=2, rank=0, monkeypatch=monkeypatch)
    second = _sample(tiny, prompts[4:], seed=5, world=2, rank=1, monkeypatch=monkeypatch)
    assert torch.equal(one, torch.cat([first, second]))
    other = _sample(tiny, prompts, seed=6, world=1, rank=0, monkeypatch=monkeypatch)
    assert not torch.equal(one, other)


def test_greedy_calls_pass_through_and_other_samplers_are_refused(tiny):
    model, tok = load_model(tiny)
    enc = tok(["Say the digit 3 (1)"], return_tensors="pt")
    with torch.no_grad():
        plain = model.generate(**enc, do_sample=False, max_new_tokens=6, pad_token_id=tok.pad_token_id)
        keyed_generate(model, 0)
        greedy = model.generate(**enc, do_sample=False, max_new_tokens=6, pad_token_id=tok.pad_token_id)
        assert torch.equal(plain, greedy)
        with pytest.raises(ValueError, match="objective.sampler=keyed samples at a temperature only"):
            model.generate(**enc, do_sample=True, top_k=5, max_new_tokens=6, pad_token_id=tok.pad_token_id)


def test_several_sequences_per_prompt_and_undoing_the_wrapper(tiny):
    """``num_return_sequences`` = k samples the same k keyed rows as the prompt repeated k times; after training
    the model samples with the library again (plain_generate)."""
    from harness.data.sampling import plain_generate

    enc_kw = dict(do_sample=True, temperature=1.0, top_k=0, max_new_tokens=6, min_new_tokens=6)
    outs = []
    for repeat in (False, True):
        model, tok = load_model(tiny)
        keyed_generate(model, 1)
        enc = tok(["Say the digit 3 (1)"], return_tensors="pt")
        with torch.no_grad():
            if repeat:
                outs.append(model.generate(**{k: v.repeat(3, 1) for k, v in enc.items()}, **enc_kw,
                                           pad_token_id=tok.pad_token_id))
            else:
                outs.append(model.generate(**enc, num_return_sequences=3, **enc_kw, pad_token_id=tok.pad_token_id))
    assert torch.equal(outs[0], outs[1])
    assert len({tuple(r.tolist()) for r in outs[0]}) > 1  # distinct samples
    assert "generate" in model.__dict__
    plain_generate(model)
    assert "generate" not in model.__dict__
